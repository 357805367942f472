"""Upgrades never lose rows: a catalog made by the first release (0001) upgraded to head, and back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine

from nvrlib.catalog.models import Base
from tests.support.upgrades import (
    FIRST_RELEASE, downgrade_to, fill_first_release, head, rows_lost, upgrade_to,
)


@pytest.fixture
def engine(tmp_path) -> Iterator[Engine]:
    """A fresh SQLite catalog file (no schema yet)."""
    engine = create_engine(f"sqlite:///{tmp_path / 'nvr.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def first_release(engine: Engine) -> Engine:
    """A catalog at the first released schema, every table holding rows."""
    upgrade_to(engine, FIRST_RELEASE)
    fill_first_release(engine)
    return engine


def test_first_release_catalog_upgrades_to_head_with_every_row(first_release):
    upgrade_to(first_release, "head")
    with first_release.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == head()
    assert rows_lost(first_release) == []
    upgrade_to(first_release, "head")  # idempotent: a second start changes nothing
    assert rows_lost(first_release) == []


def test_downgrade_to_the_first_release_keeps_its_rows(first_release):
    # Downgrades are tested, not promised: they drop what later schemas added (docs/guide).
    upgrade_to(first_release, "head")
    downgrade_to(first_release, FIRST_RELEASE)
    assert rows_lost(first_release) == []
    upgrade_to(first_release, "head")
    assert rows_lost(first_release) == []


def test_the_migrations_at_head_make_exactly_the_models_tables(engine):
    upgrade_to(engine, "head")
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_a_single_hub_catalog_becomes_hub_main_with_its_storage_id(first_release):
    upgrade_to(first_release, "0006")
    with first_release.begin() as conn:
        conn.exec_driver_sql("INSERT INTO settings (key, value, updated_at, updated_by) "
                             "VALUES ('storage.id', 'abc123', '2026-03-01 10:00:00', 'hub')")
    upgrade_to(first_release, "head")
    with first_release.connect() as conn:
        assert conn.exec_driver_sql("SELECT id, storage_id FROM hubs").all() == [("main", "abc123")]
        assert {row[0] for row in conn.exec_driver_sql("SELECT hub_id FROM cameras")} == {"main"}
        assert {row[0] for row in conn.exec_driver_sql("SELECT hub_id FROM segments")} == {"main"}
        assert conn.exec_driver_sql("SELECT count(*) FROM settings").scalar() == 0
    downgrade_to(first_release, "0006")  # the storage id goes back where 0006 looks for it
    with first_release.connect() as conn:
        assert conn.exec_driver_sql("SELECT value FROM settings WHERE key = 'storage.id'"
                                    ).scalar() == "abc123"


def test_downgrade_below_several_hubs_is_refused_while_another_hub_has_cameras(first_release):
    upgrade_to(first_release, "head")
    with first_release.begin() as conn:
        conn.exec_driver_sql("UPDATE cameras SET hub_id = 'b' WHERE name = 'yard'")
    with pytest.raises(RuntimeError, match="belong to hubs other than 'main'"):
        downgrade_to(first_release, "0006")
    assert rows_lost(first_release) == []


def test_the_head_read_from_the_files_is_alembics_for_both_databases() -> None:
    from alembic.script import ScriptDirectory

    from nvrlib.catalog import db
    from webapp import users_migrations

    for folder, config in ((db.MIGRATIONS_DIR, db.alembic_config()),
                           (users_migrations.MIGRATIONS_DIR, users_migrations.alembic_config())):
        expected = ScriptDirectory.from_config(config).get_current_head()
        assert db.head_revision(folder / "versions") == expected


def test_a_start_skips_alembic_only_when_the_catalog_has_every_migration(engine) -> None:
    from nvrlib.catalog import db

    versions = db.MIGRATIONS_DIR / "versions"
    assert not db.is_at_head(engine, versions)  # a new file: no version table
    upgrade_to(engine, FIRST_RELEASE)
    assert not db.is_at_head(engine, versions)  # an older schema: alembic upgrades it
    db.upgrade(engine)
    assert db.is_at_head(engine, versions)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == head()
    db.upgrade(engine)  # the fast path: nothing to do
    assert db.is_at_head(engine, versions)
