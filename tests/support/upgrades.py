"""Upgrades that never lose rows: fill a catalog at the first released schema, upgrade, compare.

Shared by tests/recorder/test_migrations.py (SQLite) and tests/e2e/test_postgres.py
(PostgreSQL, on the cluster that module already runs).
"""

from __future__ import annotations

import datetime as dt

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData, select

from nvrlib.catalog.db import alembic_config, migration_lock

FIRST_RELEASE = "0001"
T0 = dt.datetime(2026, 3, 1, 10, 0, tzinfo=dt.timezone.utc)

# One row for every table of schema 0001, with every column set (including the nullable ones)
# and values a careless ALTER or type change would mangle: an offset time, a big integer,
# a float with many digits, non-ASCII text.
ROWS_0001: dict[str, list[dict[str, object]]] = {
    "cameras": [
        {"id": 1, "name": "porch", "location": "Front porch — Zoë's", "kind": "push",
         "enabled": True, "first_seen": T0, "last_seen": T0 + dt.timedelta(hours=5)},
        {"id": 2, "name": "yard", "location": "", "kind": "pull", "enabled": False,
         "first_seen": T0, "last_seen": None},
    ],
    "runs": [
        {"id": "run-a", "camera_id": 1, "started_at": T0, "ended_at": T0 + dt.timedelta(hours=1),
         "end_reason": "clean_shutdown", "anchor_wall": T0, "anchor_pts": 1.4000001,
         "peer": "192.0.2.7:50000", "location": "Front porch — Zoë's"},
    ],
    "segments": [
        {"id": 10 + seq, "camera_id": 1, "run_id": "run-a", "seq": seq, "location": "porch",
         "start_time": T0 + dt.timedelta(seconds=10 * seq),
         "end_time": T0 + dt.timedelta(seconds=10 * seq + 10), "duration": 10.04,
         "size_bytes": 5_000_000_000 + seq, "path": f"porch/2026-03-01/run-a-{seq:06d}.ts",
         "codec": "h264", "width": 1280, "height": 720, "status": "ok", "recovered": seq == 2,
         "created_at": T0, "note": "recovered after a crash" if seq == 2 else None}
        for seq in range(3)
    ],
}


def upgrade_to(engine: Engine, revision: str) -> None:
    """Run the catalog's migrations up to ``revision`` under the migration lock."""
    config = alembic_config()
    with migration_lock(engine) as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade_to(engine: Engine, revision: str) -> None:
    """Run the catalog's migrations down to ``revision`` under the migration lock."""
    config = alembic_config()
    with migration_lock(engine) as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def head() -> str:
    """The newest revision of the catalog."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head() or ""


def fill_first_release(engine: Engine) -> None:
    """Insert ROWS_0001 into a catalog at schema 0001 (tables reflected, not from today's models)."""
    tables = MetaData()
    tables.reflect(engine, only=list(ROWS_0001))
    with engine.begin() as conn:
        for name, rows in ROWS_0001.items():
            conn.execute(tables.tables[name].insert(), rows)


def rows_lost(engine: Engine) -> list[str]:
    """Every ROWS_0001 value that the catalog no longer holds, as "table.id.column: want, got"."""
    tables = MetaData()
    tables.reflect(engine, only=list(ROWS_0001))
    lost = []
    with engine.connect() as conn:
        for name, rows in ROWS_0001.items():
            table = tables.tables[name]
            found = {row.id: row._mapping for row in conn.execute(select(table))}
            for want in rows:
                got = found.get(want["id"])
                if got is None:
                    lost.append(f"{name}.{want['id']}: missing")
                    continue
                lost += [f"{name}.{want['id']}.{column}: {value!r}, got {got[column]!r}"
                         for column, value in want.items() if not _same(value, got[column])]
    return lost


def _same(want: object, got: object) -> bool:
    if isinstance(want, dt.datetime) and isinstance(got, dt.datetime):
        # SQLite keeps naive UTC; PostgreSQL gives the session's zone: compare instants
        return want == (got if got.tzinfo else got.replace(tzinfo=dt.timezone.utc))
    return want == got

