"""Motion events in the catalog: stored once by key, merged at their end, deleted with footage."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update

from nvrlib.catalog.models import Camera, MotionEvent
from recorder.store.catalog import Catalog
from recorder.store.motion import EventFields, camera_motion, snapshot_path, store_event
from tests.recorder.test_retention import (  # noqa: F401  (fixtures: catalog, pg_cluster)
    BOTH_BACKENDS, add, ago, catalog, lock, make, pg_cluster,
)

JPEG = b"\xff\xd8\xff\xe0" + bytes(100)


def event(key: str, start: dt.datetime, seconds: float | None = 5.0, score: float = 0.1,
          snapshot: bytes | None = None, camera: str = "porch") -> EventFields:
    end = None if seconds is None else start + dt.timedelta(seconds=seconds)
    return EventFields(camera, key, start, end, score, (0.1, 0.2, 0.3, 0.4), snapshot)


def camera_id(catalog: Catalog, name: str) -> int:
    found = camera_motion(catalog, name)
    assert found is not None
    return found.camera_id


def events(catalog: Catalog) -> dict[str, MotionEvent]:
    with catalog.session() as session:
        return {row.event_key: row for row in session.scalars(select(MotionEvent))}


@BOTH_BACKENDS
def test_an_event_reported_at_start_and_end_is_one_row_and_a_resend_changes_nothing(catalog):
    add(catalog, "porch", ago(seconds=60))
    porch = camera_id(catalog, "porch")
    start = ago(seconds=30)
    assert store_event(catalog, event("run-1", start, seconds=None, score=0.0), porch)
    assert events(catalog)["run-1"].end_time is None
    for _ in range(2):  # the end, sent twice (the edge's queue retried it)
        assert store_event(catalog, event("run-1", start, score=0.25, snapshot=JPEG), porch)
    row = events(catalog)["run-1"]
    assert row.end_time == start + dt.timedelta(seconds=5) and row.score == 0.25
    assert (row.box_x, row.box_y, row.box_w, row.box_h) == (0.1, 0.2, 0.3, 0.4)
    snapshot = catalog.storage.root / row.snapshot_path
    assert snapshot == snapshot_path(catalog.storage, "porch", start, "run-1")
    assert snapshot.read_bytes() == JPEG and row.source == "edge" and row.hub_id == "main"
    assert not list(snapshot.parent.glob("*.part"))


def test_a_key_of_another_camera_is_refused(catalog):
    add(catalog, "porch", ago(seconds=60))
    add(catalog, "yard", ago(seconds=60))
    assert store_event(catalog, event("k-1", ago(seconds=30)), camera_id(catalog, "porch"))
    assert not store_event(catalog, event("k-1", ago(seconds=30), camera="yard"),
                           camera_id(catalog, "yard"))
    assert events(catalog)["k-1"].camera_id == camera_id(catalog, "porch")


@BOTH_BACKENDS
def test_retention_deletes_the_events_and_snapshots_of_the_footage_it_deletes(catalog):
    for days in (3, 2, 1):  # 10-s segments at these ages; days = 1.5 deletes the first two
        add(catalog, "porch", ago(days))
    porch = camera_id(catalog, "porch")
    old = ago(3) + dt.timedelta(seconds=2)
    store_event(catalog, event("old", old, snapshot=JPEG), porch)
    store_event(catalog, event("gap", ago(2.5), snapshot=JPEG), porch)  # between segments
    store_event(catalog, event("locked", ago(2.2)), porch)
    store_event(catalog, event("new", ago(1), snapshot=JPEG), porch)
    # no end, 12 h before the deleted footage ends: its edge died mid-event (no event lasts
    # MAX_EVENT_SECONDS, 6 h), so it goes with that footage
    store_event(catalog, event("dead-edge", ago(2.5), seconds=None, snapshot=JPEG), porch)
    # no end, started an hour before the deleted footage ends: it may still end, so it stays
    store_event(catalog, event("open", ago(2) - dt.timedelta(hours=1), seconds=None), porch)
    lock(catalog, "porch", ago(2.2), ago(2.2) + dt.timedelta(seconds=1))
    with catalog.sessions.begin() as session:  # another hub's event of that camera: not ours
        session.execute(update(Camera).values(hub_id="main"))
    store_event(catalog, event("other-hub", ago(2.6)), porch)
    with catalog.sessions.begin() as session:
        session.execute(update(MotionEvent).where(MotionEvent.event_key == "other-hub")
                        .values(hub_id="b"))
    old_day = catalog.storage.root / events(catalog)["old"].snapshot_path
    dead_edge = catalog.storage.root / events(catalog)["dead-edge"].snapshot_path
    make(catalog, days=1.5).run_pass()
    assert set(events(catalog)) == {"locked", "new", "open", "other-hub"}
    assert not dead_edge.exists()
    assert not old_day.exists() and not old_day.parent.exists()  # the motion folder went
    assert not old_day.parent.parent.exists()  # and the day folder, empty now
    assert (catalog.storage.root / events(catalog)["new"].snapshot_path).exists()
