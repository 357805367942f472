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
