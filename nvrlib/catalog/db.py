"""Database engine set-up (durable SQLite pragmas) and migrations applied at start.

Hubs and web apps started together on one fresh catalog all migrate it at start; each one's
upgrade runs under a migration lock (`migration_lock`), so one creates the schema and the
others wait for it, then find the schema up to date (docs/design/architecture.md).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

if TYPE_CHECKING:  # alembic is imported only when a database needs migrating (a third of a
    from alembic.config import Config as AlembicConfig  # second of every start otherwise)

from nvrlib.private_files import secure_sqlite_file

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
CATALOG_LOCK = "catalog"  # the name of the catalog's migration lock (see migration_lock)
# Beside a SQLite database "nvr.db": "nvr.db-migrate.lock" (as SQLite's own "-wal", "-shm").
LOCK_FILE_SUFFIX = "-migrate.lock"


class MigrationLockError(OSError):
    """The migration lock file cannot be opened (an OSError: the hub exits 1 with it)."""


def sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    """Make a new SQLite connection durable and concurrent (WAL, synchronous=FULL)."""
    # WAL lets the web app read while the hub writes; synchronous=FULL makes a committed
    # row survive power loss, which the catalog's "fsync, then insert" order relies on.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str) -> Engine:
    """Create an engine for ``url``; SQLite files get their folder and durable pragmas."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            # the catalog holds camera URLs with their passwords: only the service reads it
            secure_sqlite_file(Path(parsed.database))
        engine = create_engine(url, connect_args={"timeout": 10})
        event.listen(engine, "connect", sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def alembic_config() -> AlembicConfig:
    """Return an Alembic config pointing at the project's migrations folder."""
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig(str(MIGRATIONS_DIR / "alembic.ini"))
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def advisory_key(name: str) -> int:
    """Return the PostgreSQL advisory lock key of a migration lock (a stable signed 64-bit int)."""
    digest = hashlib.sha256(f"nvr-migrations:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock_file_of(engine: Engine) -> Path | None:
    """Return the migration lock file of a SQLite database file (None: not a file)."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    database = Path(url.database)
    return database.with_name(database.name + LOCK_FILE_SUFFIX)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on ``path`` (created 0600); released when the block ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_RDONLY is enough for flock, and opens a lock file another user made readable.
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise MigrationLockError(
            exc.errno, f"cannot open the migration lock {path}: {exc.strerror} (the hub and "
            f"the web app must both be able to read it; it sits beside the database)") from None
    try:
        _flock_waiting(fd, str(path))
        yield
    finally:
        os.close(fd)  # closing the only descriptor releases the lock, as does dying


def _flock_waiting(fd: int, what: str) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EACCES):
            raise
    logger.info("waiting for another process to finish migrating (%s)", what)
    fcntl.flock(fd, fcntl.LOCK_EX)


def _advisory_lock(connection: Connection, name: str) -> None:
    """Take a transaction-scoped PostgreSQL advisory lock on ``connection``, waiting for it."""
    key = advisory_key(name)
    taken = connection.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key})
    if not taken.scalar():
        logger.info("waiting for another process to finish migrating (the %s database)", name)
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


@contextlib.contextmanager
def migration_lock(engine: Engine, name: str = CATALOG_LOCK) -> Iterator[Connection]:
    """Open a transaction on ``engine`` that holds the database's migration lock.

    PostgreSQL: a transaction-scoped advisory lock, released at commit or rollback (or when
    the connection dies). SQLite: an exclusive ``flock`` on a file beside the database, held
    until the transaction ended. Another process that wants it waits; a process that dies
    while holding it releases it.
    """
    lock_file = lock_file_of(engine)
    with contextlib.ExitStack() as stack:
        if lock_file is not None:
            stack.enter_context(_file_lock(lock_file))
        connection = stack.enter_context(engine.begin())
        if engine.dialect.name == "postgresql":
            _advisory_lock(connection, name)
        yield connection


_REVISION = re.compile(r"""^revision(?:\s*:\s*str)?\s*=\s*["']([^"']+)["']""", re.M)
_DOWN_REVISION = re.compile(r"""^down_revision[^=\n]*=\s*(?:["']([^"']+)["']|None)""", re.M)


def head_revision(versions: Path) -> str | None:
    """The newest revision of a migrations folder, read from its files without alembic.

    None when the folder does not have exactly one head (alembic then decides).
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in versions.glob("*.py"):
        source = path.read_text("utf-8")
        revision, down = _REVISION.search(source), _DOWN_REVISION.search(source)
        if revision is None:
            continue  # not a migration (a package's __init__.py)
        if down is None:
            return None
        revisions.add(revision[1])
        if down[1]:
            parents.add(down[1])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def is_at_head(engine: Engine, versions: Path, version_table: str = "alembic_version") -> bool:
    """Tell whether a database already has every migration of ``versions`` (read only)."""
    head = head_revision(versions)
    if head is None:
        return False
    try:
        with engine.connect() as connection:
            found = connection.execute(text(f"SELECT version_num FROM {version_table}")).all()
    except SQLAlchemyError:  # no version table yet: a new database
        return False
    return [row[0] for row in found] == [head]


def upgrade_locked(engine: Engine, config: AlembicConfig, name: str) -> None:
    """Run ``alembic upgrade head`` with ``config`` under the migration lock ``name``."""
    from alembic import command

    with migration_lock(engine, name) as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def upgrade(engine: Engine) -> None:
    """Apply every migration that the catalog lacks (idempotent; one process at a time)."""
    if is_at_head(engine, MIGRATIONS_DIR / "versions"):
        return  # the usual start: nothing to do, and no alembic to import
    upgrade_locked(engine, alembic_config(), CATALOG_LOCK)


def redacted(url: str) -> str:
    """Return the database URL with any password hidden, for logs."""
    return make_url(url).render_as_string(hide_password=True)
