"""Locks never stop recording (issue 9): in a full-disk emergency, viewer locks yield first.

The audit's case: viewer locks spanning years on a real catalog and real files, a disk below
its safety margin and no unlocked footage left. Retention deletes the oldest footage under the
viewer locks, shortens them, reports them, and the hub's alert names who, why and the span.
Admin locks hold while viewer footage is left and yield only as the last resort, with their
own alert (docs/design/health.md, "Locks in an emergency"). SQLite only: the tiers' SQL is
`unlocked()` with one more condition, which test_retention.py runs on PostgreSQL too (a second
throwaway cluster here would cost the suite three seconds).
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from nvrlib.catalog.models import Camera, RecordingLock
from recorder.config import HubConfig
from recorder.health.messages import compose
from recorder.health.monitor import HealthMonitor
from recorder.store.catalog import Catalog
from recorder.store import retention as retention_module
from recorder.store.retention import YieldedLock, finish_deletions
from tests.support import aio

from .test_health_streams import FakeHub
from .test_retention import (  # noqa: F401  (catalog: a fixture)
    SEGMENT, FakeDisk, add, ago, assert_catalog_matches_disk, catalog, make, starts,
)

YEARS = dt.timedelta(days=3 * 365)


def lock(catalog: Catalog, camera: str | None, start: dt.datetime, end: dt.datetime,
         by: str, reason: str, admin: bool = False) -> int:
    """Write a lock as the web app does; return its id."""
    with catalog.sessions.begin() as session:
        camera_id = None if camera is None else session.scalar(
            select(Camera.id).where(Camera.name == camera))
        row = RecordingLock(camera_id=camera_id, start_time=start, end_time=end, note=reason,
                            created_by=by, created_at=ago(1), admin=admin)
        session.add(row)
        session.flush()
        return row.id


def locks(catalog: Catalog) -> dict[int, RecordingLock]:
    with catalog.session() as session:
        return {row.id: row for row in session.scalars(select(RecordingLock))}


def day(n: int) -> dt.datetime:
    """Segment n of a camera: one every 70 days, the oldest 700 days ago."""
    return ago(days=700 - 70 * n)


def test_viewer_locks_spanning_years_yield_their_oldest_footage_and_admin_locks_hold(catalog):
    for n in range(10):
        add(catalog, "porch", day(n))
        add(catalog, "yard", day(n))
    porch = lock(catalog, "porch", ago(0) - YEARS, ago(0), "mallory", "watching the porch")
    yard = lock(catalog, "yard", ago(0) - YEARS, ago(0), "mallory", "watching the yard")
    every = lock(catalog, None, ago(0) - YEARS, ago(0), "mallory",
                 "(no reason given: locked before reasons were required)")
    evidence = lock(catalog, "porch", day(0), day(1) + SEGMENT, "admin", "burglary", admin=True)
    # 20 segments of 1 000 bytes; 16 000 free, margin 20 000 + headroom 1 000: five must go
    disk = FakeDisk(catalog.storage.root, total=100_000, other=64_000)

    report = make(catalog, disk, days=30, min_free_percent=20).emergency()

    assert report.emergency and report.only_locked_left and not report.more
    assert report.deleted_segments == 5 and report.free_after == 21_000
    # oldest first, skipping what the admin lock holds: yard 0, yard 1, porch 2, yard 2, porch 3
    assert starts(catalog, "porch") == [day(n) for n in (0, 1, 4, 5, 6, 7, 8, 9)]
    assert starts(catalog, "yard") == [day(n) for n in range(3, 10)]
    assert_catalog_matches_disk(catalog)

    rows = locks(catalog)
    assert rows[evidence].start_time == day(0) and rows[evidence].yielded_at is None
    assert rows[porch].start_time == day(3) + SEGMENT  # past its deleted footage, not dropped
    assert rows[yard].start_time == day(2) + SEGMENT
    assert rows[every].start_time == day(3) + SEGMENT
    for lock_id in (porch, yard, every):
        assert rows[lock_id].original_start == ago(0) - YEARS
        assert rows[lock_id].yielded_at == ago(0)
    assert [(y.id, y.created_by, y.admin) for y in report.yielded_locks] == [
        (porch, "mallory", False), (yard, "mallory", False), (every, "mallory", False)]
    assert report.yielded_locks[0] == YieldedLock(
        porch, "porch", "mallory", "watching the porch", False, ago(0) - YEARS, ago(0),
        day(3) + SEGMENT)


def test_admin_locks_yield_only_as_the_last_resort_with_their_own_alert(catalog):
    for n in range(10):
        add(catalog, "porch", day(n))
    viewer = lock(catalog, "porch", day(5), day(9) + SEGMENT, "victor", "fox at night")
    admin = lock(catalog, "porch", day(0), day(4) + SEGMENT, "root", "court case", admin=True)
    # 14 000 free, 21 000 wanted: the viewer's five newer segments, then the two oldest
    disk = FakeDisk(catalog.storage.root, total=100_000, other=76_000)

    report = make(catalog, disk, days=None, min_free_percent=20).emergency()

    assert report.deleted_segments == 7 and report.free_after == 21_000
    assert starts(catalog, "porch") == [day(n) for n in (2, 3, 4)]
    rows = locks(catalog)
    assert rows[viewer].start_time == rows[viewer].end_time  # all its footage went
    assert rows[admin].start_time == day(1) + SEGMENT
    assert [(y.id, y.admin) for y in report.yielded_locks] == [(viewer, False), (admin, True)]

    hub = FakeHub(HubConfig(), {})
    aio.run(HealthMonitor(hub)._after_retention(report))  # type: ignore[arg-type]
    raised = {kind: details for kind, _camera, details in hub.alerts_raised}
    assert raised["disk_emergency"]["only_locked_left"] is True
    assert [entry["id"] for entry in raised["locks_yielded"]["locks"]] == [viewer]
    assert [entry["id"] for entry in raised["admin_locks_yielded"]["locks"]] == [admin]

    viewer_mail = compose("locks_yielded", None, ago(0), raised["locks_yielded"], "[NVR]")
    assert viewer_mail.subject == "[NVR] disk full: 1 viewer lock yielded footage"
    assert "lock %d on porch by victor (fox at night)" % viewer in viewer_mail.body
    assert f"{day(5):%Y-%m-%dT%H:%M:%S}Z to {day(9) + SEGMENT:%Y-%m-%dT%H:%M:%S}Z" in (
        viewer_mail.body)
    admin_mail = compose("admin_locks_yielded", None, ago(0), raised["admin_locks_yielded"],
                         "[NVR]")
    assert admin_mail.subject == "[NVR] disk full: 1 ADMIN lock yielded footage"
    assert "lock %d on porch by root (court case)" % admin in admin_mail.body
    assert "only after every viewer lock has" in admin_mail.body


def test_a_crash_after_marking_leaves_the_yielded_lock_already_shortened(catalog, monkeypatch):
    for n in range(4):
        add(catalog, "porch", day(n))
    viewer = lock(catalog, "porch", day(0), day(3) + SEGMENT, "victor", "fox")
    disk = FakeDisk(catalog.storage.root, total=100_000, other=77_000)  # two must go

    def crash(*_args, **_kwargs):
        raise SystemExit("the hub was killed after marking")

    monkeypatch.setattr(retention_module, "remove_marked", crash)
    with pytest.raises(SystemExit):
        make(catalog, disk, min_free_percent=20).emergency()
    assert locks(catalog)[viewer].start_time == day(1) + SEGMENT  # committed with the marks
    monkeypatch.undo()
    assert finish_deletions(catalog, catalog.storage) == 2  # start-up completes the deletion
    assert starts(catalog, "porch") == [day(2), day(3)]
    assert_catalog_matches_disk(catalog)


@pytest.mark.parametrize("admin", [False, True])
def test_locks_still_hold_against_age_and_budgets(catalog, admin):
    add(catalog, "porch", ago(40))
    lock(catalog, "porch", ago(41), ago(39), "victor", "fox", admin=admin)
    report = make(catalog, days=30, max_gb=1 / 1e9).run_pass()
    assert starts(catalog) == [ago(40)] and not report.yielded_locks
