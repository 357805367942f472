"""Alembic environment shared by the hub (which passes a connection) and Flask-Migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from nvrlib.catalog.db import migration_lock
from nvrlib.catalog.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    try:  # under `flask db ...` the app's configured catalog wins
        from flask import current_app

        return str(current_app.extensions["migrate"].db.engine.url.render_as_string(hide_password=False))
    except (ImportError, RuntimeError, KeyError):
        return config.get_main_option("sqlalchemy.url") or "sqlite:///data/nvr.db"


def run_migrations_offline() -> None:
    """Emit SQL without a database connection."""
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Apply migrations on the connection the caller passed, or on a new one."""
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    # `flask db upgrade`: as the hub and the web app at start, under the migration lock.
    engine = create_engine(_url())
    try:
        with migration_lock(engine) as conn:
            context.configure(connection=conn, target_metadata=target_metadata,
                              render_as_batch=True)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
