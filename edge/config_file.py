"""The edge's TOML config file: every key is a long flag (``spool_size`` is ``--spool-size``).

`python -m edge --config /etc/nvr/edge/yard.toml` reads the file and parses its keys exactly as
the flags they name, so a value is checked by the same code with the same messages whichever
way it came; flags on the command line win over the file. One file per edge process is what
the `nvr-edge@.service` template runs (one instance per file).
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path
from typing import Any

from nvrlib.did_you_mean import did_you_mean

from .errors import ConfigError

CONFIG_FLAG = "--config"
_NOT_IN_FILES = {"--config", "--help"}


def expand_config_file(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """Return ``argv`` with the flags of its ``--config FILE`` (if any) put in front of it."""
    path, rest = _split_config_flag(argv)
    if path is None:
        return argv
    try:
        values = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read it: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--config {path}: not valid TOML: {exc}") from None
    actions = _actions_by_key(parser)
    given = {arg.split("=", 1)[0] for arg in rest if arg.startswith("--")}
    flags: list[str] = []
    problems: list[str] = []  # every bad key of the file, reported at once
    for key, value in values.items():
        action = actions.get(key)
        if action is None:
            problems.append(f"--config {path}: unknown key {key!r}"
                            f"{did_you_mean(key, actions, max_listed=len(actions))}")
            continue
        if _flag_of(action) in given or f"--no-{key.replace('_', '-')}" in given:
            continue  # the command line wins, lists included
        try:
            flags += _as_flags(path, key, value, action)
        except ConfigError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError("\n".join(problems))
    return flags + rest


def _split_config_flag(argv: list[str]) -> tuple[str | None, list[str]]:
    for index, arg in enumerate(argv):
        if arg == CONFIG_FLAG:
            if index + 1 >= len(argv):
                raise ConfigError("--config: expected a file name")
            return argv[index + 1], argv[:index] + argv[index + 2:]
        if arg.startswith(CONFIG_FLAG + "="):
            return arg.split("=", 1)[1], argv[:index] + argv[index + 1:]
    return None, argv


def _actions_by_key(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    actions = {}
    for action in parser._actions:  # argparse has no public list of its options
        long_flags = [s for s in action.option_strings if s.startswith("--")]
        if long_flags and long_flags[0] not in _NOT_IN_FILES:
            actions[long_flags[0][2:].replace("-", "_")] = action
    return actions


def _flag_of(action: argparse.Action) -> str:
    return next(s for s in action.option_strings if s.startswith("--"))


def _as_flags(path: str, key: str, value: Any, action: argparse.Action) -> list[str]:
    flag = _flag_of(action)
    where = f"--config {path}: {key}"
    if isinstance(action, argparse.BooleanOptionalAction):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return [flag if value else f"--no-{key.replace('_', '-')}"]
    if action.nargs == 0:  # store_true
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return [flag] if value else []
    if isinstance(action, argparse._AppendAction):
        items = value if isinstance(value, list) else [value]
        return [part for item in items for part in (flag, _scalar(where, item))]
    return [flag, _scalar(where, value)]


def _scalar(where: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ConfigError(f"{where}: expected a string or a number, got {value!r}")
    return str(value)
