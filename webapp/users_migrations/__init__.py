"""Alembic migrations of the users database (a separate file from the hub's catalog)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from nvrlib.catalog import db as catalog_db

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS_DIR = Path(__file__).resolve().parent
# Its own version table, so the users schema could even share a database with the catalog.
VERSION_TABLE = "users_alembic_version"
# Its own migration lock too: web apps starting together migrate the users database one at a time.
LOCK_NAME = "users"


def alembic_config() -> AlembicConfig:
    """Return an Alembic config for the users migrations (no alembic.ini needed)."""
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def upgrade(engine: Engine) -> None:
    """Apply every users migration that the database lacks (idempotent; one process at a time)."""
    if catalog_db.is_at_head(engine, MIGRATIONS_DIR / "versions", VERSION_TABLE):
        return
    catalog_db.upgrade_locked(engine, alembic_config(), LOCK_NAME)
