"""Longest files first: the order in which pytest-xdist hands test files to its workers.

The suite runs one file at a time per worker (``--dist loadfile``). xdist's own order puts the
files with the most tests first, which are the quick unit-test files: the few end-to-end files
that take a minute each then start last and keep one worker busy while the others sit idle.
Handing out the longest files first (the classic longest-processing-time rule) ends every
worker at about the same time. The weights are each file's seconds from a measured run,
kept in tests/durations.json; refresh them with

    scripts/test.sh --junitxml=/tmp/junit.xml && .venv/bin/python -m tests.support.schedule /tmp/junit.xml

A file missing from the list (a new one) gets NEW_FILE_SECONDS, so it neither jumps the queue
nor waits for the very end.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

DURATIONS = Path(__file__).resolve().parent.parent / "durations.json"
NEW_FILE_SECONDS = 5.0


class _Item(Protocol):
    nodeid: str


def file_of(nodeid: str) -> str:
    """The test file of a pytest node id (``tests/a/test_b.py::test_c[x]`` -> ``tests/a/test_b.py``)."""
    return nodeid.split("::", 1)[0]


def load_weights(path: Path = DURATIONS) -> dict[str, float]:
    """Seconds per test file from the last refresh (empty if the file is missing or broken)."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(name): float(seconds) for name, seconds in data.items()
            if isinstance(seconds, (int, float))}


def longest_files_first(items: Sequence[_Item], weights: dict[str, float]) -> list[_Item]:
    """``items`` with whole files ordered by weight, heaviest first; tests keep their order."""
    first_seen: dict[str, int] = {}
    for index, item in enumerate(items):
        first_seen.setdefault(file_of(item.nodeid), index)

    def key(indexed: tuple[int, _Item]) -> tuple[float, int, int]:
        name = file_of(indexed[1].nodeid)
        return (-weights.get(name, NEW_FILE_SECONDS), first_seen[name], indexed[0])

    return [item for _, item in sorted(enumerate(items), key=key)]


def seconds_per_file(junit_xml: Path) -> dict[str, float]:
    """Sum a JUnit XML report's test times per test file (setup and teardown included)."""
    totals: dict[str, float] = {}
    for case in ET.parse(junit_xml).getroot().iter("testcase"):
        module = case.get("classname", "")
        # pytest writes "tests.e2e.test_x" or, for a test in a class, "tests.e2e.test_x.TestY"
        parts = module.split(".")
        while parts and not parts[-1].startswith("test_"):
            parts.pop()
        if not parts:
            continue
        name = "/".join(parts) + ".py"
        totals[name] = totals.get(name, 0.0) + float(case.get("time", "0") or 0)
    return totals


def main(argv: list[str]) -> int:
    """Write tests/durations.json from a JUnit XML report of a whole run."""
    if len(argv) != 1:
        print("usage: python -m tests.support.schedule JUNIT_XML", file=sys.stderr)
        return 2
    totals = seconds_per_file(Path(argv[0]))
    ordered = dict(sorted(((name, round(seconds, 1)) for name, seconds in totals.items()),
                          key=lambda entry: -entry[1]))
    DURATIONS.write_text(json.dumps(ordered, indent=1) + "\n", "utf-8")
    print(f"{len(ordered)} files, {sum(ordered.values()):.0f} s in all -> {DURATIONS}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
