"""Upgrades never lose rows: a catalog made by the first release (0001) upgraded to head, and back."""

from __future__ import annotations

from sqlalchemy import create_engine, inspect

from tests.support.upgrades import (
    FIRST_RELEASE, downgrade_to, fill_first_release, head, rows_lost, upgrade_to,
)


def test_first_release_catalog_upgrades_to_head_with_every_row(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'nvr.db'}")
    try:
        upgrade_to(engine, FIRST_RELEASE)
        fill_first_release(engine)
        upgrade_to(engine, "head")
        assert inspect(engine).has_table("alembic_version")
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == head()
        assert rows_lost(engine) == []
        upgrade_to(engine, "head")  # idempotent: a second start changes nothing
        assert rows_lost(engine) == []
    finally:
        engine.dispose()


def test_downgrade_to_the_first_release_keeps_its_rows(tmp_path):
    # Downgrades are tested, not promised: they drop what later schemas added (docs/guide).
    engine = create_engine(f"sqlite:///{tmp_path / 'nvr.db'}")
    try:
        upgrade_to(engine, FIRST_RELEASE)
        fill_first_release(engine)
        upgrade_to(engine, "head")
        downgrade_to(engine, FIRST_RELEASE)
        assert rows_lost(engine) == []
        upgrade_to(engine, "head")
        assert rows_lost(engine) == []
    finally:
        engine.dispose()


def test_the_migrations_at_head_make_exactly_the_models_tables(tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from nvrlib.catalog.models import Base

    engine = create_engine(f"sqlite:///{tmp_path / 'nvr.db'}")
    try:
        upgrade_to(engine, "head")
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert differences == []
    finally:
        engine.dispose()
