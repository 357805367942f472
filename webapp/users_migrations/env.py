"""Alembic environment of the users database; the web app passes its own connection."""

from __future__ import annotations

from alembic import context

from webapp.models import UsersBase
from webapp.users_migrations import VERSION_TABLE

config = context.config
target_metadata = UsersBase.metadata


def run_migrations_offline() -> None:
    """Emit SQL without a database connection."""
    context.configure(url=config.get_main_option("sqlalchemy.url") or "sqlite:///data/users.db",
                      target_metadata=target_metadata, literal_binds=True, render_as_batch=True,
                      version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Apply migrations on the connection that webapp.users_migrations.upgrade passed."""
    connection = config.attributes["connection"]
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=True, version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
