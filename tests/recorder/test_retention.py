"""Retention on a real SQLite catalog and real files: limits, locks, emergencies and crashes.

The core cases also run on a throwaway PostgreSQL cluster (``BOTH_BACKENDS``), since the
correlated lock condition and the batched updates must behave the same there.
"""

from __future__ import annotations

import datetime as dt
import itertools
import pathlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from nvrlib.catalog import db
from nvrlib.catalog.models import Camera, RecordingLock, Segment
from recorder.config import CameraConfig, HubConfig, RetentionConfig
from recorder.store.catalog import Catalog
from recorder.store.reconcile import reconcile
from recorder.store.retention import DiskUsage, Retention, Shortfall, finish_deletions
from recorder.store.storage import Storage
from tests.support.postgres import create_database, postgres_cluster, postgres_unavailable_reason
from tests.support.requirements import require

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SEGMENT = dt.timedelta(seconds=10)


class FakeDisk:
    """A filesystem of ``total`` bytes whose used space is ``other`` plus the files under root."""

    def __init__(self, root: Path, total: int, other: int = 0) -> None:
        self.root, self.total, self.other = root, total, other

    def __call__(self) -> DiskUsage:
        used = sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())
        return DiskUsage(self.total, self.total - self.other - used)


_databases = itertools.count()
BOTH_BACKENDS = pytest.mark.parametrize("catalog", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture(scope="module")
def pg_cluster() -> Iterator[str]:
    """One throwaway PostgreSQL cluster for the module's PostgreSQL cases."""
    require(postgres_unavailable_reason())
    with postgres_cluster("nvr") as url:
        yield url


@pytest.fixture
def catalog(tmp_path, request) -> Iterator[Catalog]:
    """A catalog on a real SQLite file (or, parametrized, a fresh PostgreSQL database)."""
    if getattr(request, "param", "sqlite") == "postgresql":
        url = create_database(request.getfixturevalue("pg_cluster"), f"ret{next(_databases)}")
    else:
        url = f"sqlite:///{tmp_path / 'nvr.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    storage = Storage(tmp_path / "rec")
    storage.root.mkdir()
    yield Catalog(engine, storage)
    engine.dispose()


def add(catalog: Catalog, camera: str, start: dt.datetime, size: int = 1000,
        status: str = "ok", seconds: float = 10.0) -> Segment:
    """Insert a segment row and, unless it is 'missing', its file of ``size`` bytes."""
    with catalog.sessions.begin() as session:
        camera_id = session.scalar(select(Camera.id).where(Camera.name == camera))
        if camera_id is None:
            row = Camera(name=camera)
            session.add(row)
            session.flush()
            camera_id = row.id
        path = catalog.storage.final_path(camera, start, "0123abcd", 0)
        if status != "missing":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(bytes(size))
        segment = Segment(camera_id=camera_id, run_id=None, start_time=start,
                          end_time=start + dt.timedelta(seconds=seconds), duration=seconds,
                          size_bytes=size, path=str(path.relative_to(catalog.storage.root)),
                          status=status)
        session.add(segment)
    return segment


def ago(days: float = 0, seconds: float = 0) -> dt.datetime:
    return NOW - dt.timedelta(days=days, seconds=seconds)


def make(catalog: Catalog, disk: FakeDisk | None = None, cameras=(), **retention) -> Retention:
    settings = {"days": None, "min_free_gb": 0.0, "min_free_percent": 0.0, **retention}
    config = HubConfig(retention=RetentionConfig(**settings), cameras=tuple(cameras))
    disk = disk or FakeDisk(catalog.storage.root, total=10**12)
    return Retention(config, catalog, catalog.storage, clock=lambda: NOW, disk_usage=disk)


def rows(catalog: Catalog, camera: str | None = None) -> list[Segment]:
    with catalog.session() as session:
        query = select(Segment).join(Camera).order_by(Segment.start_time, Segment.id)
        if camera is not None:
            query = query.where(Camera.name == camera)
        return list(session.scalars(query))


def starts(catalog: Catalog, camera: str | None = None) -> list[dt.datetime]:
    return [row.start_time for row in rows(catalog, camera)]


def files_on_disk(storage: Storage) -> set[str]:
    return {str(p.relative_to(storage.root)) for p in storage.root.rglob("*.ts")}


def assert_catalog_matches_disk(catalog: Catalog) -> None:
    cataloged = {row.path for row in rows(catalog) if row.status != "missing"}
    assert all(row.status in ("ok", "missing") for row in rows(catalog))
    assert cataloged == files_on_disk(catalog.storage)


def lock(catalog: Catalog, camera: str | None, start: dt.datetime, end: dt.datetime) -> None:
    with catalog.sessions.begin() as session:
        camera_id = None if camera is None else session.scalar(
            select(Camera.id).where(Camera.name == camera))
        session.add(RecordingLock(camera_id=camera_id, start_time=start, end_time=end))


# -- age ---------------------------------------------------------------------------------------

@BOTH_BACKENDS
def test_a_cameras_own_days_beat_the_global_days_and_other_cameras_use_the_global(catalog):
    for camera in ("porch", "yard"):
        for days in (12, 5, 3, 1):
            add(catalog, camera, ago(days))
    retention = make(catalog, days=10, cameras=[CameraConfig("porch", retention_days=2)])
    report = retention.run_pass()
    assert starts(catalog, "porch") == [ago(1)]
    assert starts(catalog, "yard") == [ago(5), ago(3), ago(1)]
    assert report.deleted_segments == 4 and report.deleted_bytes == 4000
    assert report.shortfalls == [] and not report.emergency
    assert_catalog_matches_disk(catalog)


def test_a_segment_that_ends_inside_the_limit_is_kept(catalog):
    add(catalog, "porch", ago(2, seconds=5))  # started before the 2-day cutoff, ends after
    add(catalog, "porch", ago(2, seconds=10))  # ended exactly at the cutoff
    make(catalog, days=2).run_pass()
    assert starts(catalog) == [ago(2, seconds=5)]


def test_no_age_limit_keeps_everything(catalog):
    add(catalog, "porch", ago(4000))
    assert make(catalog, days=None).run_pass().deleted_segments == 0
    assert len(rows(catalog)) == 1


def test_missing_rows_older_than_the_limit_are_removed(catalog):
    add(catalog, "porch", ago(40), status="missing")
    add(catalog, "porch", ago(1), status="missing")
    report = make(catalog, days=30).run_pass()
    assert report.missing_rows_removed == 1 and report.deleted_segments == 0
    assert [r.start_time for r in rows(catalog)] == [ago(1)]


# -- size budgets ----------------------------------------------------------------------------------

@BOTH_BACKENDS
def test_a_camera_budget_deletes_that_cameras_oldest_and_reports_the_shortfall(catalog):
    for minute in range(10):
        add(catalog, "porch", ago(seconds=3600 - 60 * minute))
        add(catalog, "yard", ago(seconds=3600 - 60 * minute))
    cameras = [CameraConfig("porch", retention_gb=5000 / 1e9)]
    report = make(catalog, days=30, cameras=cameras).run_pass()
    kept = starts(catalog, "porch")
    assert kept == [ago(seconds=3600 - 60 * m) for m in range(5, 10)]
    assert len(starts(catalog, "yard")) == 10
    kept_days = pytest.approx((3600 - 300) / 86400)
    assert report.shortfalls == [Shortfall("porch", 30, kept_days, "budget")]
    assert_catalog_matches_disk(catalog)


def test_the_global_budget_deletes_the_oldest_across_cameras(catalog):
    for n in range(10):
        add(catalog, "porch" if n % 2 else "yard", ago(seconds=1000 - 60 * n))
    report = make(catalog, max_gb=4000 / 1e9).run_pass()
    assert starts(catalog) == [ago(seconds=1000 - 60 * n) for n in range(6, 10)]
    assert report.deleted_segments == 6
    assert report.shortfalls == []  # no age limit: nothing to fall short of
    assert make(catalog, max_gb=4000 / 1e9).disk().footage_bytes == 4000


@pytest.mark.parametrize(("max_gb", "max_percent", "kept"), [
    (None, 0.5, 5),  # 0.5 % of a 1 MB disk: 5000 bytes
    (3000 / 1e9, 0.5, 3),  # the smaller of the two wins
    (8000 / 1e9, 0.5, 5),
])
def test_the_global_budget_is_the_smaller_of_gb_and_percent_of_the_disk(
        catalog, max_gb, max_percent, kept):
    for n in range(10):
        add(catalog, "porch", ago(seconds=1000 - 60 * n))
    disk = FakeDisk(catalog.storage.root, total=1_000_000)
    make(catalog, disk, max_gb=max_gb, max_percent=max_percent).run_pass()
    assert len(rows(catalog)) == kept


def test_the_tighter_of_days_and_budget_wins(catalog):
    for days in (5, 4, 3, 2, 1):
        add(catalog, "porch", ago(days))
    make(catalog, days=3.5, max_gb=10_000 / 1e9).run_pass()  # days are tighter
    assert starts(catalog) == [ago(3), ago(2), ago(1)]
    make(catalog, days=3.5, max_gb=1000 / 1e9).run_pass()  # now the budget is
    assert starts(catalog) == [ago(1)]


# -- the safety margin ----------------------------------------------------------------------------

@pytest.mark.parametrize(("min_free_gb", "min_free_percent", "total", "margin"), [
    (1.0, 5.0, 100 * 10**9, 5 * 10**9),  # 5 % of 100 GB beats 1 GB
    (1.0, 5.0, 10 * 10**9, 10**9),  # 1 GB beats 5 % of 10 GB
    (1.0, 5.0, 48 * 2**20, 24 * 2**20),  # never more than half the filesystem
    (0.0, 25.0, 48_000_000, 12_000_000),
])
def test_the_margin_is_the_larger_of_gb_and_percent_capped_at_half(
        catalog, min_free_gb, min_free_percent, total, margin):
    retention = make(catalog, min_free_gb=min_free_gb, min_free_percent=min_free_percent)
    assert retention.margin_bytes(total) == margin


def test_no_emergency_while_free_space_is_above_the_margin(catalog):
    add(catalog, "porch", ago(100))
    disk = FakeDisk(catalog.storage.root, total=1_000_000, other=700_000)
    report = make(catalog, disk, min_free_percent=20).emergency()
    assert not report.emergency and report.deleted_segments == 0
    assert report.free_before == report.free_after == 299_000


@BOTH_BACKENDS
def test_an_emergency_deletes_the_oldest_of_all_cameras_until_margin_plus_headroom(catalog):
    for n in range(85):
        add(catalog, ("porch", "yard", "gate")[n % 3], ago(seconds=10_000 - 60 * n), size=10_000)
    disk = FakeDisk(catalog.storage.root, total=1_000_000)  # 150 000 bytes free
    retention = make(catalog, disk, days=30, min_free_percent=20)
    report = retention.emergency()
    # margin 200 000 + 1 % headroom = 210 000 free: six 10 000-byte segments go
    assert report.emergency and report.deleted_segments == 6 and not report.only_locked_left
    assert (report.free_before, report.free_after) == (150_000, 210_000)
    assert starts(catalog)[0] == ago(seconds=10_000 - 60 * 6)
    assert {s.camera for s in report.shortfalls} == {"porch", "yard", "gate"}
    assert all(s.cause == "emergency" and s.configured_days == 30 for s in report.shortfalls)
    assert retention.emergency().deleted_segments == 0  # the headroom: no emergency next time
    assert_catalog_matches_disk(catalog)


def test_an_emergency_stops_when_deleting_does_not_give_space_back(catalog):
    for n in range(50):
        add(catalog, "porch", ago(seconds=1000 - 10 * n), size=10_000)
    def stuck_disk() -> DiskUsage:  # free space that never moves: deleted files held open
        return DiskUsage(1_000_000, 100_000)

    report = make(catalog, stuck_disk, min_free_percent=20).emergency()
    # it needed 110 000 bytes (11 segments a batch): the batch that takes it past twice that
    # is its last, instead of going on through all 50 segments
    assert report.more and report.deleted_bytes == 330_000
    assert len(rows(catalog)) == 17


# -- locks ---------------------------------------------------------------------------------------

@BOTH_BACKENDS
def test_locked_footage_survives_an_emergency_while_unlocked_footage_is_enough(catalog):
    # when only locked footage is left, locks yield: tests/recorder/test_retention_locks.py
    for n in range(10):
        add(catalog, "porch", ago(seconds=1000 - 60 * n))
        add(catalog, "yard", ago(seconds=1000 - 60 * n))
    lock(catalog, "porch", ago(seconds=1000 - 60 * 2), ago(seconds=1000 - 60 * 3) + SEGMENT)
    lock(catalog, None, ago(seconds=1000 - 60 * 7 - 1), ago(seconds=1000 - 60 * 7 - 1))
    # 5 000 bytes free, 21 000 wanted: exactly the 16 unlocked segments
    disk = FakeDisk(catalog.storage.root, total=100_000, other=75_000)
    report = make(catalog, disk, days=30, min_free_percent=20).emergency()
    assert report.emergency and not report.only_locked_left and not report.yielded_locks
    assert starts(catalog, "porch") == [ago(seconds=1000 - 60 * n) for n in (2, 3, 7)]
    assert starts(catalog, "yard") == [ago(seconds=1000 - 60 * 7)]
    assert report.deleted_segments == 16
    assert_catalog_matches_disk(catalog)


def test_locks_hold_against_age_and_budget_too(catalog):
    for days in (40, 39, 38):
        add(catalog, "porch", ago(days))
    lock(catalog, "porch", ago(39), ago(39) + SEGMENT)
    report = make(catalog, days=30, max_gb=1 / 1e9).run_pass()
    assert starts(catalog) == [ago(39)]
    assert report.only_locked_left


@BOTH_BACKENDS
@pytest.mark.parametrize(("lock_start", "lock_end", "kept"), [
    (0, 10, [0]),  # exactly one segment
    (10, 10, [10]),  # an instant on a boundary: the segment that starts there
    (5, 5, [0]),  # an instant inside a segment
    (9, 11, [0, 10]),  # across a boundary
])
def test_a_lock_protects_exactly_the_segments_sharing_an_instant_with_it(
        catalog, lock_start, lock_end, kept):
    base = ago(100)
    for offset in (0, 10, 20):
        add(catalog, "porch", base + dt.timedelta(seconds=offset))
    lock(catalog, "porch", base + dt.timedelta(seconds=lock_start),
         base + dt.timedelta(seconds=lock_end))
    make(catalog, days=30).run_pass()
    assert starts(catalog) == [base + dt.timedelta(seconds=s) for s in kept]


def test_a_lock_of_another_camera_protects_nothing_here(catalog):
    add(catalog, "porch", ago(100))
    add(catalog, "yard", ago(1))
    lock(catalog, "yard", ago(200), ago(0))
    make(catalog, days=30).run_pass()
    assert starts(catalog, "porch") == []


@BOTH_BACKENDS
def test_a_lock_saved_while_a_pass_chooses_still_wins(catalog, monkeypatch):
    add(catalog, "porch", ago(100))
    retention = make(catalog, days=30)
    choose = Retention._select

    def choose_then_lock(self, query):
        chosen = choose(self, query)
        if chosen:  # the web app saves a lock between the choice and the mark
            lock(catalog, None, ago(101), ago(0))
        return chosen

    monkeypatch.setattr(Retention, "_select", choose_then_lock)
    assert retention.run_pass().deleted_segments == 0
    assert starts(catalog) == [ago(100)]


# -- the deletion protocol -------------------------------------------------------------------------

def test_deleting_removes_the_thumbnail_and_the_emptied_day_folder(catalog):
    old = add(catalog, "porch", ago(40))
    add(catalog, "porch", ago(1))
    thumb = catalog.storage.thumbnail_path("porch", old.id)
    thumb.parent.mkdir(parents=True)
    thumb.write_bytes(b"jpeg")
    day = (catalog.storage.root / old.path).parent
    make(catalog, days=30).run_pass()
    assert not thumb.exists() and not day.exists()
    assert (catalog.storage.root / "porch").is_dir()


@BOTH_BACKENDS
def test_a_crash_between_mark_and_unlink_is_finished_at_the_next_start(catalog, monkeypatch):
    for days in (40, 39, 38, 1):
        add(catalog, "porch", ago(days))
    real_unlink = pathlib.Path.unlink
    calls = []

    def crash_on_second_unlink(path, missing_ok=False):
        if path.suffix == ".ts":
            calls.append(path)
        if len(calls) == 2:
            raise SystemExit("power cut")  # not an OSError: the pass stops dead
        real_unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(pathlib.Path, "unlink", crash_on_second_unlink)
    with pytest.raises(SystemExit):
        make(catalog, days=30).run_pass()
    monkeypatch.setattr(pathlib.Path, "unlink", real_unlink)
    assert [r.status for r in rows(catalog)] == ["deleting", "deleting", "deleting", "ok"]
    assert len(files_on_disk(catalog.storage)) == 3  # one unlinked, two not yet

    report = reconcile(catalog, catalog.storage)  # the next start
    assert report.deletions_finished == 3 and not report.recovered and not report.missing
    assert starts(catalog) == [ago(1)]
    assert_catalog_matches_disk(catalog)


def test_finish_deletions_handles_rows_whose_file_is_already_gone(catalog):
    gone = add(catalog, "porch", ago(40))
    add(catalog, "porch", ago(39))
    add(catalog, "porch", ago(1))
    (catalog.storage.root / gone.path).unlink()
    with catalog.sessions.begin() as session:
        session.execute(update(Segment).where(Segment.start_time < ago(2))
                        .values(status="deleting"))
    assert finish_deletions(catalog, catalog.storage) == 2
    assert starts(catalog) == [ago(1)]
    assert_catalog_matches_disk(catalog)


def test_a_file_that_cannot_be_unlinked_stays_marked_and_is_retried(catalog, monkeypatch):
    add(catalog, "porch", ago(40))
    real_unlink = pathlib.Path.unlink
    failures = []

    def refuse_once(path, missing_ok=False):
        if path.suffix == ".ts" and not failures:
            failures.append(path)
            raise PermissionError(13, "Permission denied")
        real_unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(pathlib.Path, "unlink", refuse_once)
    retention = make(catalog, days=30)
    assert retention.run_pass().deleted_segments == 0
    assert [r.status for r in rows(catalog)] == ["deleting"]
    assert retention.disk().footage_bytes == 0  # marked rows are no longer footage
    assert retention.run_pass().deleted_segments == 1
    assert rows(catalog) == [] and files_on_disk(catalog.storage) == set()


@pytest.mark.parametrize("status", ["ok", "deleting"])
def test_a_path_that_leaves_the_storage_root_is_never_unlinked(catalog, tmp_path, status):
    outside = tmp_path / "outside.ts"
    outside.write_bytes(b"not ours")
    row = add(catalog, "porch", ago(40))
    (catalog.storage.root / row.path).unlink()
    with catalog.sessions.begin() as session:
        session.execute(update(Segment).values(path="../outside.ts", status=status))
    if status == "ok":
        make(catalog, days=30).run_pass()
    else:
        assert finish_deletions(catalog, catalog.storage) == 1
    assert outside.read_bytes() == b"not ours"
    assert rows(catalog) == []


# -- the footage total and the time budget ---------------------------------------------------------

def test_the_footage_total_counts_ok_rows_as_they_come_and_go(catalog):
    retention = make(catalog, max_gb=2500 / 1e9)
    assert retention.disk().footage_bytes == 0
    for n in range(3):
        add(catalog, "porch", ago(seconds=100 - n))
    add(catalog, "yard", ago(1), status="missing")
    assert retention.disk().footage_bytes == 3000
    retention.run_pass()
    assert retention.disk().footage_bytes == 2000 == make(catalog).disk().footage_bytes


def test_the_footage_total_counts_a_new_row_that_reuses_a_deleted_id(catalog):
    retention = make(catalog, days=30)
    add(catalog, "porch", ago(1))
    old = add(catalog, "porch", ago(40))  # the highest id is the oldest footage
    assert retention.disk().footage_bytes == 2000
    retention.run_pass()
    reused = add(catalog, "porch", ago(seconds=5), size=700)
    assert reused.id == old.id  # SQLite hands out max(id) + 1 again
    assert retention.disk().footage_bytes == 1700


def test_a_pass_out_of_time_stops_between_batches_and_the_next_one_goes_on(catalog):
    for n in range(5):
        add(catalog, "porch", ago(40, seconds=n))
    retention = make(catalog, days=30)
    retention.time_budget = 0.0
    report = retention.run_pass()
    assert report.more and report.deleted_segments == 0
    retention.time_budget = 60.0
    report = retention.run_pass()
    assert not report.more and report.deleted_segments == 5
