"""The catalog's side of backfill: true slot, duplicates dropped, outages credited (real SQLite)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from nvrlib.catalog import db
from nvrlib.catalog.models import Camera, Outage, Segment
from recorder.store.catalog import Catalog, RunInfo
from recorder.store.storage import Storage
from tests.support.media import encoded_ts

UTC = dt.timezone.utc
EPOCH = dt.datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def clip() -> bytes:
    """4 s of real H.264 in MPEG-TS (first PTS about 1.4 s)."""
    return encoded_ts(4)


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'nvr.db'}")
    db.upgrade(engine)
    catalog = Catalog(engine, Storage(tmp_path / "recordings"))
    catalog.ensure_camera("porch", "", "push")
    yield catalog
    engine.dispose()


def run(catalog: Catalog, run_id: str, kind: str, epoch: dt.datetime = EPOCH) -> RunInfo:
    info = RunInfo(run_id=run_id, camera="porch", location="", anchor_wall=epoch,
                   anchor_pts=0.0, anchor_exact=True)
    catalog.start_run(info, kind, "127.0.0.1:1")
    return info


def add(catalog: Catalog, info: RunInfo, clip: bytes, seq: int = 0):
    incoming = catalog.storage.incoming_dir("porch")
    incoming.mkdir(parents=True, exist_ok=True)
    source = incoming / f"{info.run_id}-{seq:06d}.ts"
    source.write_bytes(clip)
    return catalog.finish_segment(info, source, 0.0, 5.4)


def rows(catalog: Catalog) -> list[Segment]:
    with catalog.session() as session:
        return list(session.scalars(select(Segment).order_by(Segment.start_time)))


def test_a_backfilled_segment_is_cataloged_in_its_slot_and_marked(catalog, clip):
    segment = add(catalog, run(catalog, "b0000001", "backfill"), clip)
    (row,) = rows(catalog)
    assert row.backfilled and not row.recovered
    first = (row.start_time - EPOCH).total_seconds()  # the epoch is PTS 0: the true slot
    assert 1.4 <= first < 1.6
    assert segment.last_pts == pytest.approx(first + 4 - 1 / 25, abs=1e-4)  # the last frame


def test_a_wholly_covered_backfill_is_dropped_but_reported(catalog, clip):
    add(catalog, run(catalog, "a0000001", "push"), clip)
    dropped = add(catalog, run(catalog, "b0000001", "backfill"), clip)
    assert dropped.deduplicated and dropped.id == 0 and dropped.last_pts is not None
    assert not dropped.path.exists()
    assert [r.backfilled for r in rows(catalog)] == [False]


def test_a_partly_covered_backfill_is_kept(catalog, clip):
    add(catalog, run(catalog, "a0000001", "push"), clip)
    later = EPOCH + dt.timedelta(seconds=2)  # half of it overlaps the live segment
    kept = add(catalog, run(catalog, "b0000001", "backfill", later), clip)
    assert not kept.deduplicated
    assert [r.backfilled for r in rows(catalog)] == [False, True]


def test_live_segments_are_never_dropped(catalog, clip):
    add(catalog, run(catalog, "a0000001", "push"), clip)
    add(catalog, run(catalog, "a0000002", "push"), clip)
    assert len(rows(catalog)) == 2


def test_backfilled_seconds_inside_an_outage_are_credited_up_to_its_length(catalog, clip):
    with catalog.sessions.begin() as session:
        camera_id = session.scalar(select(Camera.id))
        session.add(Outage(camera_id=camera_id, started_at=EPOCH + dt.timedelta(seconds=3),
                           ended_at=EPOCH + dt.timedelta(seconds=60), reason="connection_lost"))
    add(catalog, run(catalog, "b0000001", "backfill"), clip)  # 1.4 s .. 5.4 s
    with catalog.session() as session:
        outage = session.scalar(select(Outage))
    assert outage.backfilled_seconds == pytest.approx(2.4, abs=0.1)  # 3 s .. 5.4 s


def test_dropped_spool_seconds_go_to_the_open_else_the_latest_outage(catalog):
    assert not catalog.add_dropped_seconds("porch", 5.0)  # no outage yet
    with catalog.sessions.begin() as session:
        camera_id = session.scalar(select(Camera.id))
        for minutes, ended in ((10, True), (5, True)):
            start = EPOCH + dt.timedelta(minutes=minutes)
            session.add(Outage(camera_id=camera_id, started_at=start, reason="stalled",
                               ended_at=start + dt.timedelta(minutes=1) if ended else None))
    assert catalog.add_dropped_seconds("porch", 5.0)
    with catalog.session() as session:
        latest = session.scalar(select(Outage).order_by(Outage.started_at.desc()))
    assert latest.dropped_seconds == 5.0


def test_a_backfill_verdict_never_creates_a_camera(catalog):
    assert catalog.camera_verdict("porch") == "ok"
    assert catalog.camera_verdict("nobody") == "unknown"
    with catalog.session() as session:
        assert session.scalar(select(Camera.id).where(Camera.name == "nobody")) is None
