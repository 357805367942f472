"""The storage a catalog records into is checked at start: an unmounted disk marks nothing missing."""

from __future__ import annotations

import shutil

import pytest
from sqlalchemy import select

from nvrlib.catalog import db
from nvrlib.catalog.models import Segment
from recorder.errors import StorageMismatch
from recorder.store.catalog import Catalog
from recorder.store.identity import MARKER_FILE, check_storage_identity
from recorder.store.reconcile import reconcile
from recorder.store.storage import Storage
from tests.recorder.test_reconcile import catalog, sample_ts  # noqa: F401  (fixtures)
from tests.recorder.test_reconcile import rows


def record_one(catalog: Catalog, sample_ts: bytes) -> str:
    """Catalog one real segment the way start-up recovery does; return its path."""
    check_storage_identity(catalog, catalog.storage)
    (catalog.storage.incoming_dir("porch") / "abcdef12-000001.ts").write_bytes(sample_ts)
    reconcile(catalog, catalog.storage)
    [row] = rows(catalog)
    return row.path


def statuses(catalog: Catalog) -> list[str]:
    with catalog.session() as session:
        return list(session.scalars(select(Segment.status)))


def test_first_start_adopts_the_storage_and_later_starts_agree(catalog):
    storage_id = check_storage_identity(catalog, catalog.storage)
    assert (catalog.storage.root / MARKER_FILE).read_text().strip() == storage_id
    assert check_storage_identity(catalog, catalog.storage) == storage_id


def test_an_unmounted_footage_disk_stops_the_start_before_anything_is_marked_missing(
        catalog, sample_ts, tmp_path):
    record_one(catalog, sample_ts)
    mounted = catalog.storage.root.rename(tmp_path / "disk")  # the mount point is now empty
    catalog.storage.root.mkdir()
    with pytest.raises(StorageMismatch, match="Is the footage disk mounted"):
        check_storage_identity(catalog, catalog.storage)
    assert statuses(catalog) == ["ok"]
    shutil.rmtree(catalog.storage.root)
    mounted.rename(catalog.storage.root)  # mounted again: all is well
    check_storage_identity(catalog, catalog.storage)
    assert reconcile(catalog, catalog.storage).missing == []


def test_a_second_hub_with_its_own_storage_on_the_same_catalog_is_refused(catalog, sample_ts,
                                                                          tmp_path):
    record_one(catalog, sample_ts)
    other = Storage(tmp_path / "other")
    engine = db.make_engine(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        db.upgrade(engine)
        check_storage_identity(Catalog(engine, other), other)  # it belongs to another catalog
    finally:
        engine.dispose()
    with pytest.raises(StorageMismatch, match="belongs to another catalog"):
        check_storage_identity(catalog, other)
    assert statuses(catalog) == ["ok"]


def test_an_empty_catalog_takes_a_new_storage_without_a_fuss(catalog, tmp_path):
    check_storage_identity(catalog, catalog.storage)
    fresh = Storage(tmp_path / "new-disk")  # nothing recorded yet: nothing to lose
    check_storage_identity(catalog, fresh)
    assert (fresh.root / MARKER_FILE).exists()


def test_missing_rows_whose_files_come_back_are_ok_again(catalog, sample_ts, tmp_path):
    path = record_one(catalog, sample_ts)
    segment = catalog.storage.root / path
    hidden = segment.rename(tmp_path / "away.ts")
    assert reconcile(catalog, catalog.storage).missing == [path]
    assert statuses(catalog) == ["missing"]
    hidden.rename(segment)  # restored from a backup
    assert reconcile(catalog, catalog.storage).found == [path]
    assert statuses(catalog) == ["ok"]


def test_a_hub_upgraded_from_one_hub_per_catalog_keeps_its_storage_as_hub_main(tmp_path):
    from tests.support.upgrades import upgrade_to
    engine = db.make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        upgrade_to(engine, "0006")
        storage = Storage(tmp_path / "rec")
        storage.root.mkdir()
        (storage.root / MARKER_FILE).write_text("0ld1d\n")
        with engine.begin() as conn:  # what a hub of revision 0006 wrote at its first start
            conn.exec_driver_sql("INSERT INTO settings (key, value, updated_at, updated_by) "
                                 "VALUES ('storage.id', '0ld1d', '2026-03-01 10:00:00', 'hub')")
        db.upgrade(engine)
        assert check_storage_identity(Catalog(engine, storage), storage) == "0ld1d"
        with pytest.raises(StorageMismatch, match="is the storage of hub 'main'"):
            check_storage_identity(Catalog(engine, storage, "garage"), storage)
    finally:
        engine.dispose()
