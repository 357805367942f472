"""The config file's schema: one table of keys per section, and a check that reports every problem.

Each key names a checker that turns a TOML value into the value the program uses or raises
`Invalid` with what is allowed. `check_table` runs them all and collects one message per bad key
(its dotted name, the value given, what is allowed) instead of stopping at the first, so a file
is fixed in one round. Unknown keys are refused, with a "did you mean" when a key is close.
A hand-written table rather than pydantic/msgspec: the file's keys are flat scalars with ranges,
and a table lets every message keep the key's dotted name and hide secret values, which a
library's generic messages (and `input_value`) would need per-field overrides for.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from nvrlib.did_you_mean import did_you_mean
from recorder.errors import ConfigError

HIDDEN = "(hidden: it is a secret)"
_MAX_SHOWN = 80  # a long value is cut in a message


class Invalid(Exception):
    """A value is not allowed; the message says what is (e.g. "must be between 1 and 10")."""


@dataclasses.dataclass(frozen=True)
class Key:
    """One key of a section: how its value is checked, and whether it is a secret."""

    check: Callable[[Any], Any]
    secret: bool = False


@dataclasses.dataclass(frozen=True)
class Table:
    """A key whose value is a table (``[alerts]``) checked against its own schema."""

    schema: Mapping[str, Key | Table | TableList]


@dataclasses.dataclass(frozen=True)
class TableList:
    """A key whose value is an array of tables (``[[cameras]]``), each checked alike."""

    schema: Mapping[str, Key | Table | TableList]


Schema = Mapping[str, "Key | Table | TableList"]


class Problems:
    """The problems found in one configuration, in the order they were found."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def __bool__(self) -> bool:
        return bool(self.messages)

    def add(self, message: str) -> None:
        """Record one problem (a line that names the key)."""
        self.messages.append(message)

    def bad_value(self, name: str, value: Any, reason: str, secret: bool = False) -> None:
        """Record that key ``name`` holds a value that is not allowed, and what is."""
        self.add(f"{name}: {reason}, got {HIDDEN if secret else shown(value)}")

    def raise_if_any(self) -> None:
        """Raise one ConfigError that lists every problem, one per line."""
        if self.messages:
            raise ConfigError("\n".join(self.messages))


def shown(value: Any) -> str:
    """Return a value as a message shows it: its TOML-ish repr, cut when long."""
    text = repr(value)
    if isinstance(value, bool):
        text = "true" if value else "false"
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN - 3] + "..."


def figure(value: float) -> str:
    """Return a bound as a message shows it: 1000000, not 1e+06."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def dotted(where: str, key: str) -> str:
    """Return the dotted name of ``key`` in the section ``where`` ('' is the top level)."""
    return f"{where}.{key}" if where else key


def check_table(table: Mapping[str, Any], schema: Schema, where: str,
                problems: Problems) -> dict[str, Any]:
    """Check every key of ``table``; return the checked values of the good ones."""
    good: dict[str, Any] = {}
    for key, value in table.items():
        spec = schema.get(key)
        name = dotted(where, key)
        if spec is None:
            problems.add(f"{where or 'config'}: unknown key {key!r}{did_you_mean(key, schema)}")
        elif isinstance(spec, Table):
            if not isinstance(value, dict):
                problems.bad_value(name, value, f"[{name}] must be a table")
            else:
                good[key] = check_table(value, spec.schema, name, problems)
        elif isinstance(spec, TableList):
            if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
                problems.bad_value(name, value, f"must be tables ([[{name}]])")
            else:
                good[key] = [check_table(t, spec.schema, f"{name}[{i}]", problems)
                             for i, t in enumerate(value)]
        else:
            try:
                good[key] = spec.check(value)
            except Invalid as exc:
                problems.bad_value(name, value, str(exc), spec.secret)
    return good


def check_environment(environ: Mapping[str, str], variables: Mapping[str, str], schema: Schema,
                      problems: Problems) -> dict[str, Any]:
    """Check the set variables that override keys (variable -> key) with those keys' checkers."""
    checked: dict[str, Any] = {}
    for variable, key in variables.items():
        value = environ.get(variable, "").strip()
        spec = schema[key]
        if not value or not isinstance(spec, Key):
            continue
        try:
            checked[key] = spec.check(value)
        except Invalid as exc:  # the message names the variable, not the key it overrides
            problems.bad_value(variable, value, str(exc), spec.secret)
    return checked


def report(path: Path, problems: list[str]) -> int:
    """Print what `check-config` says of ``path``: "FILE: ok" (0) or one line per problem (1)."""
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        return 1
    print(f"{path}: ok")
    return 0


# -- checkers: each returns the value to use or raises Invalid ---------------------------------

def boolean(value: Any) -> bool:
    """Accept only TOML's true and false (a string "false" is not false)."""
    if not isinstance(value, bool):
        raise Invalid("expected true or false")
    return value


def number(low: float, high: float) -> Callable[[Any], float]:
    """Accept an integer or a float from ``low`` to ``high``."""

    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            raise Invalid(f"expected a number from {figure(low)} to {figure(high)}")
        if not low <= value <= high:
            raise Invalid(f"must be between {figure(low)} and {figure(high)}")
        return float(value)

    return check


def whole(low: int, high: int) -> Callable[[Any], int]:
    """Accept a whole number from ``low`` to ``high``."""

    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f"expected a whole number from {low} to {high}")
        if not low <= value <= high:
            raise Invalid(f"must be between {low} and {high}")
        return value

    return check


def limit(high: float) -> Callable[[Any], float | None]:
    """Accept a number from 0 to ``high`` where 0 means "no limit" (None)."""
    check_number = number(0, high)

    def check(value: Any) -> float | None:
        try:
            return check_number(value) or None
        except Invalid:
            raise Invalid(f"expected a number from 0 (no limit) to {figure(high)}") from None

    return check


def text(value: Any) -> str:
    """Accept any string."""
    if not isinstance(value, str):
        raise Invalid("expected a string")
    return value


def nonempty(value: Any) -> str:
    """Accept a string that is not blank."""
    if not isinstance(value, str) or not value.strip():
        raise Invalid("expected a non-empty string")
    return value


def path(value: Any) -> Path:
    """Accept a file or folder name."""
    if not isinstance(value, (str, Path)) or not str(value).strip():
        raise Invalid("expected a file or folder name (a string)")
    return Path(value)


def choice(*allowed: str) -> Callable[[Any], str]:
    """Accept one of ``allowed``."""

    def check(value: Any) -> str:
        if value not in allowed:
            raise Invalid(f"expected one of {', '.join(allowed)}")
        return str(value)

    return check


def string_list(value: Any) -> list[str]:
    """Accept a list of strings, or one comma-separated string."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise Invalid("expected a list of strings (or one comma-separated string)")
    return [item.strip() for item in items if item.strip()]
