"""The edge's motion queue and settings: bounded, durable, an end replaces its start, and the
hub's settings win only once an admin set them."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from edge.motion import MotionEvent, MotionSettings
from edge.motion_uplink import EventQueue, SettingsChoice, report_body


def report(key: str, end: float | None = None, snapshot: bytes | None = None) -> dict:
    return report_body("yard", MotionEvent(key, 1_780_000_000.0, end, 0.1, (0, 0, 0.5, 0.5),
                                           snapshot))


@pytest.mark.parametrize("on_disk", [True, False])
def test_an_end_replaces_the_queued_start_of_its_event(tmp_path: Path, on_disk: bool) -> None:
    queue = EventQueue(tmp_path / "q" if on_disk else None)
    queue.put(report("a-1"))
    queue.put(report("a-2"))
    queue.put(report("a-1", end=1_780_000_005.0, snapshot=b"\xff\xd8\xff"))
    keys = []
    while (item := queue.peek()) is not None:
        keys.append((item[1]["event_key"], item[1]["end"] is not None))
        queue.done(item[0])
    assert keys == [("a-2", False), ("a-1", True)]
    if on_disk:
        assert list((tmp_path / "q").iterdir()) == []


def test_the_queue_survives_a_restart_in_order(tmp_path: Path) -> None:
    queue = EventQueue(tmp_path)
    for n in range(3):
        queue.put(report(f"a-{n}", snapshot=b"\xff\xd8\xff"))
    (tmp_path / "000000000009.part").write_bytes(b"{half")  # a write a crash interrupted
    again = EventQueue(tmp_path)
    assert len(again) == 3 and not list(tmp_path.glob("*.part"))
    name, body = again.peek()
    assert body["event_key"] == "a-0" and body["snapshot"] == "/9j/"
    again.put(report("a-3"))
    assert sorted(p.name for p in tmp_path.glob("*.json"))[-1] == "000000000004.json"


def test_a_full_queue_drops_the_oldest_with_a_log_line(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.WARNING)
    queue = EventQueue(tmp_path, limit=3)
    for n in range(5):
        queue.put(report(f"a-{n}"))
    assert len(queue) == 3 and queue.dropped == 2
    assert queue.peek()[1]["event_key"] == "a-2"
    assert "motion queue full (3 reports): dropped the oldest, event a-0" in caplog.text


def test_the_hubs_settings_win_only_once_an_admin_set_them() -> None:
    applied: list[MotionSettings] = []
    local = MotionSettings(enabled=False, sensitivity=30)
    choice = SettingsChoice(local, applied.append, current=local)
    choice.take(MotionSettings())  # the hub's defaults, never set: the flags stay
    assert applied == []
    admin = MotionSettings(True, 70, (), "2026-12-03T12:00:00+00:00")
    choice.take(admin)
    choice.take(admin)  # no change: applied once
    assert applied == [admin]
