"""The hub's catalog on PostgreSQL: a real hub with `--db postgresql+psycopg://...`.

A throwaway cluster (tests/support/postgres.py) runs with a server time zone far from UTC,
so timestamps that lose or misread their offset show up as hours off.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, literal_column, select, text

from nvrlib.catalog.db import alembic_config
from nvrlib.catalog.models import Camera, Run, Segment
from tests.support.postgres import (
    create_database, postgres_available, postgres_cluster, postgres_unavailable_reason,
)
from tests.support.procs import ffmpeg_pusher, running, wait_for
from tests.support.requirements import require
from tests.support.upgrades import (
    FIRST_RELEASE, downgrade_to, fill_first_release, rows_lost, upgrade_to,
)

require(None if postgres_available() else f"PostgreSQL: {postgres_unavailable_reason()}",
        module_level=True)

UTC = dt.timezone.utc
GAP = 0.041  # one frame at 25 fps, plus rounding


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """One throwaway cluster for the module; yields the URL of its first database."""
    with postgres_cluster("nvr") as url:
        yield url


@pytest.fixture
def pg(cluster: str, request: pytest.FixtureRequest) -> Iterator[tuple[str, Engine]]:
    """A fresh database per test: its URL and an engine the test reads it with."""
    url = create_database(cluster, f"nvr_{request.node.name[:40].lower()}")
    engine = create_engine(url)
    try:
        yield url, engine
    finally:
        engine.dispose()


@dataclasses.dataclass(frozen=True)
class PgRow:
    """A segment row read back through the models (UTCDateTime) and raw."""

    camera: str
    start: dt.datetime
    end: dt.datetime
    raw_start: dt.datetime
    duration: float
    path: str
    status: str
    recovered: bool
    note: str | None


def pg_segments(engine: Engine, camera: str) -> list[PgRow]:
    """Segment rows of a camera (segments joined with cameras), ordered by start."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(Camera.name, Segment.start_time, Segment.end_time,
                   literal_column("segments.start_time").label("raw_start"), Segment.duration, Segment.path,
                   Segment.status, Segment.recovered, Segment.note)
            .join(Camera, Camera.id == Segment.camera_id)
            .where(Camera.name == camera).order_by(Segment.start_time)).all()
    return [PgRow(*row) for row in rows]


def incoming(hub, camera: str) -> list[Path]:
    """Open (or interrupted) segment files of a camera."""
    folder = hub.storage / camera / ".incoming"
    return sorted(p for p in folder.glob("*.ts") if p.stat().st_size > 0) if folder.exists() else []


def alembic_versions(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.scalars(text("SELECT version_num FROM alembic_version")))


def assert_tiles(rows: list[PgRow]) -> None:
    for before, after in zip(rows, rows[1:]):
        gap = (after.start - before.end).total_seconds()
        assert abs(gap) <= GAP, (before, after, gap)


def assert_files_under_root(hub, rows: list[PgRow]) -> None:
    root = hub.storage.resolve()
    for row in rows:
        path = (root / row.path).resolve()
        assert path.is_relative_to(root), row.path
        assert path.is_file() and path.stat().st_size > 0, row.path


def test_hub_catalogs_on_postgresql_and_restarts_on_it(hub_factory, pg):
    url, engine = pg
    hub = hub_factory()
    hub.db_url = url  # Hub.start() builds `--db` from it
    hub.start()
    # the URL's user info is masked like a camera's (nvrlib/redact.py)
    assert "catalog postgresql+psycopg://***@127.0.0.1" in hub.output

    pushed_at = dt.datetime.now(UTC)
    pusher = ffmpeg_pusher(hub.url("porch"), seconds=6)
    with running(pusher):
        assert pusher.proc.wait(30) == 0, pusher.output
    wait_for(lambda: sum(r.duration for r in pg_segments(engine, "porch")) >= 5.5, 15,
             "~6 s of segments in PostgreSQL")
    assert hub.stop() == 0, hub.output[-3000:]

    rows = pg_segments(engine, "porch")
    assert len(rows) >= 3
    total = sum(r.duration for r in rows)
    assert 5.5 <= total <= 6.5, [r.duration for r in rows]
    for row in rows:
        # read through UTCDateTime: aware and in UTC
        for value in (row.start, row.end):
            assert value.tzinfo is not None and value.utcoffset() == dt.timedelta(0), value
        # raw psycopg value: aware (timestamptz, in the server's zone), the same instant
        assert row.raw_start.tzinfo is not None and row.raw_start == row.start
        assert abs((row.end - row.start).total_seconds() - row.duration) < 0.002
        assert row.status == "ok" and not row.recovered
    # the recording started when we pushed, not hours off
    assert abs((rows[0].start - pushed_at).total_seconds()) < 5, (rows[0].start, pushed_at)
    assert_tiles(rows)
    assert_files_under_root(hub, rows)
    assert not incoming(hub, "porch")

    with engine.connect() as conn:
        types = dict(conn.execute(text(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_name = 'segments' AND column_name IN ('start_time', 'end_time')")).all())
        open_runs = conn.scalar(select(Run.id).where(Run.ended_at.is_(None)))
    assert set(types.values()) == {"timestamp with time zone"}, types
    assert open_runs is None
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert alembic_versions(engine) == [head]

    # a restart on the same database: migrations are a no-op, reconciliation finds nothing
    hub.start()
    hub.process.wait_line(r"reconciled storage: 0 recovered, 0 quarantined, 0 missing")
    assert hub.stop() == 0, hub.output[-3000:]
    assert alembic_versions(engine) == [head]
    assert pg_segments(engine, "porch") == rows


def test_kill_9_then_restart_reconciles_on_postgresql(hub_factory, pg):
    url, engine = pg
    hub = hub_factory(segment_seconds=2)
    hub.db_url = url
    hub.start()
    pusher = ffmpeg_pusher(hub.url("porch"))
    with running(pusher):
        wait_for(lambda: len(pg_segments(engine, "porch")) >= 2, 20, "two segments")
        wait_for(lambda: any(p.stat().st_size > 100_000 for p in incoming(hub, "porch")),
                 10, "a half-written segment")
        hub.process.kill()
        wait_for(lambda: not hub.ffmpeg_children(), 10, "ffmpeg to die with the hub")
    # the open segment, plus (rarely) one ffmpeg had listed that the hub had no time to
    # catalog, or the next file opened with no frame yet (quarantined at start)
    files = len(list((hub.storage / "porch" / ".incoming").glob("*.ts")))
    assert 1 <= len(incoming(hub, "porch")) <= 2
    before = pg_segments(engine, "porch")

    hub.start()
    line = hub.process.wait_line(r"reconciled storage: (\d+) recovered, (\d+) quarantined, "
                                 r"0 missing, 1 runs closed")
    left, quarantined = int(line[1]), int(line[2])
    assert left >= 1 and left + quarantined == files
    assert hub.stop() == 0, hub.output[-3000:]

    rows = pg_segments(engine, "porch")
    recovered = [r for r in rows if r.recovered]
    assert len(recovered) == left and sum(r.duration for r in recovered) > 0.5, recovered
    assert all(r.note.startswith("interrupted segment") for r in recovered), recovered
    assert rows[:len(before)] == before and rows[-left:] == recovered
    assert_tiles(rows)
    assert_files_under_root(hub, rows)
    assert not incoming(hub, "porch")
    with engine.connect() as conn:
        reasons = list(conn.scalars(select(Run.end_reason).order_by(Run.started_at)))
    assert reasons and reasons[0] == "hub stopped abruptly", reasons


def test_first_release_catalog_upgrades_to_head_and_back_with_every_row(pg):
    _url, engine = pg
    upgrade_to(engine, FIRST_RELEASE)
    fill_first_release(engine)
    upgrade_to(engine, "head")
    assert rows_lost(engine) == []
    downgrade_to(engine, FIRST_RELEASE)
    assert rows_lost(engine) == []
    upgrade_to(engine, "head")
    assert rows_lost(engine) == []
