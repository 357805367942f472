"""The suite's own schedule: longest files first, tests of a file together and in order."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from tests.support.schedule import (
    DURATIONS, NEW_FILE_SECONDS, file_of, load_weights, longest_files_first, seconds_per_file,
)


@dataclasses.dataclass(frozen=True)
class Item:
    nodeid: str


def test_heaviest_file_first_and_an_unknown_file_in_between() -> None:
    items = [Item("tests/a/test_quick.py::t1"), Item("tests/a/test_quick.py::t2"),
             Item("tests/e2e/test_slow.py::t[x]"), Item("tests/new/test_new.py::t"),
             Item("tests/e2e/test_slow.py::t[y]")]
    weights = {"tests/a/test_quick.py": 0.5, "tests/e2e/test_slow.py": 70.0}
    ordered = [item.nodeid for item in longest_files_first(items, weights)]
    assert ordered == ["tests/e2e/test_slow.py::t[x]", "tests/e2e/test_slow.py::t[y]",
                       "tests/new/test_new.py::t",
                       "tests/a/test_quick.py::t1", "tests/a/test_quick.py::t2"]


@given(st.lists(st.tuples(st.sampled_from("abcde"), st.integers(0, 5))),
       st.dictionaries(st.sampled_from("abcde"), st.floats(0, 100)))
def test_the_order_is_a_permutation_grouped_by_file_and_stable(tests, weights) -> None:
    items = [Item(f"tests/test_{name}.py::t{n}_{i}") for i, (name, n) in enumerate(tests)]
    by_file = {f"tests/test_{name}.py": seconds for name, seconds in weights.items()}
    ordered = longest_files_first(items, by_file)
    assert sorted(item.nodeid for item in ordered) == sorted(item.nodeid for item in items)
    files = [file_of(item.nodeid) for item in ordered]
    runs = [name for i, name in enumerate(files) if i == 0 or files[i - 1] != name]
    assert len(runs) == len(set(runs))  # each file's tests come together
    seconds = [by_file.get(name, NEW_FILE_SECONDS) for name in runs]
    assert seconds == sorted(seconds, reverse=True)
    for name in set(files):  # and in the order they were collected
        assert ([item for item in ordered if file_of(item.nodeid) == name]
                == [item for item in items if file_of(item.nodeid) == name])


def test_seconds_per_file_sums_a_junit_report(tmp_path: Path) -> None:
    report = tmp_path / "junit.xml"
    report.write_text(
        '<testsuites><testsuite>'
        '<testcase classname="tests.e2e.test_cut" name="a" time="60.5"/>'
        '<testcase classname="tests.e2e.test_cut" name="b" time="1.5"/>'
        '<testcase classname="tests.webapp.test_api.TestTokens" name="c" time="0.25"/>'
        '</testsuite></testsuites>', "utf-8")
    assert seconds_per_file(report) == {"tests/e2e/test_cut.py": 62.0,
                                        "tests/webapp/test_api.py": 0.25}


def test_the_committed_weights_name_files_that_exist() -> None:
    weights = load_weights()
    assert weights, f"{DURATIONS} is missing or empty"
    root = DURATIONS.parent.parent
    missing = [name for name in weights if not (root / name).is_file()]
    assert not missing, f"refresh {DURATIONS.name}: it names files that are gone: {missing}"


def test_a_broken_weights_file_means_no_weights(tmp_path: Path) -> None:
    broken = tmp_path / "durations.json"
    broken.write_text("{not json", "utf-8")
    assert load_weights(broken) == {}
    broken.write_text(json.dumps({"tests/test_a.py": "x", "tests/test_b.py": 2}), "utf-8")
    assert load_weights(broken) == {"tests/test_b.py": 2.0}
