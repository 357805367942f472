"""Alembic migrations of the users database (a separate file from the hub's catalog)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine

MIGRATIONS_DIR = Path(__file__).resolve().parent
# Its own version table, so the users schema could even share a database with the catalog.
VERSION_TABLE = "users_alembic_version"


def alembic_config() -> AlembicConfig:
    """Return an Alembic config for the users migrations (no alembic.ini needed)."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def upgrade(engine: Engine) -> None:
    """Apply every users migration that the database lacks (idempotent)."""
    cfg = alembic_config()
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")
