"""Hubs and web apps started together on one fresh catalog migrate it one at a time.

A user started the hub and the web app at the same moment (scripts/run.sh, or two systemd
units at boot) and the hub crashed 2 times in 10 with "table cameras already exists": both ran
Alembic's first migration at once. Every upgrade now holds the database's migration lock
(`nvrlib.catalog.db.migration_lock`): a flock beside a SQLite file, an advisory lock on
PostgreSQL. These tests start real processes at once, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import stat
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from nvrlib.catalog import db
from tests.support.postgres import (
    create_database, postgres_available, postgres_cluster, postgres_unavailable_reason,
)
from tests.support.procs import ROOT, LoggedProcess, free_port, hub_environment, running, wait_for
from tests.support.requirements import require

pytestmark = pytest.mark.e2e

STARTS = 10  # hubs, and as many web apps, started at the same moment
STORAGE_LOCKED = "another hub is recording into"
UPGRADE = ("import logging, sys; from nvrlib.catalog import db; logging.basicConfig(level='INFO'); "
           "db.upgrade(db.make_engine(sys.argv[1])); print('upgraded', flush=True)")


def _head() -> str:
    return ScriptDirectory.from_config(db.alembic_config()).get_current_head() or ""


def _version(url: str) -> str | None:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return None
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()


def _upgrader(url: str) -> LoggedProcess:
    argv = [sys.executable, "-c", UPGRADE, url]
    return LoggedProcess(argv, cwd=ROOT, env=hub_environment({"PYTHONPATH": str(ROOT)}))


def test_processes_upgrading_one_fresh_sqlite_catalog_all_succeed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nvr.db'}"
    upgraders = [_upgrader(url) for _ in range(8)]
    with running(*upgraders):
        for process in upgraders:
            wait_for(lambda p=process: p.proc.poll() is not None, 60, "the upgrade to finish")
    failed = [p.output for p in upgraders if p.proc.returncode != 0]
    assert not failed, failed[0]
    assert _version(url) == _head()


def test_an_upgrade_waits_for_the_lock_then_finds_its_work_done(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nvr.db'}"
    engine = db.make_engine(url)
    upgrader = None
    try:
        with db.migration_lock(engine) as connection:
            upgrader = _upgrader(url)
            upgrader.wait_line(r"waiting for another process to finish migrating", 30)
            assert upgrader.proc.poll() is None  # it waits while we hold the lock ...
            lock_file = tmp_path / "nvr.db-migrate.lock"
            assert stat.S_IMODE(lock_file.stat().st_mode) == 0o600
            command.upgrade(_with_connection(connection), "head")  # ... and we migrate
        upgrader.wait_line(r"^upgraded$", 60)  # then it runs, finds the schema up to date
        assert upgrader.proc.wait(10) == 0
        assert "Running upgrade" not in upgrader.output
        assert _version(url) == _head()
    finally:
        if upgrader is not None:
            upgrader.kill_group()
        engine.dispose()


def _with_connection(connection):  # type: ignore[no-untyped-def]
    config = db.alembic_config()
    config.attributes["connection"] = connection
    return config


# -- hubs and web apps started together --------------------------------------------------------

def _http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def _start_all(workdir: Path,
               db_url: str) -> tuple[list[LoggedProcess], list[tuple[LoggedProcess, str]]]:
    """Start STARTS hubs and STARTS web apps (with --ensure-admin) on one catalog and storage."""
    storage, users = workdir / "recordings", f"sqlite:///{workdir / 'users.db'}"
    env = hub_environment({})
    hubs, webs = [], []
    for _ in range(STARTS):
        argv = [sys.executable, "-m", "recorder", "--listen", f"127.0.0.1:{free_port()}",
                "--storage", str(storage), "--db", db_url, "--segment-seconds", "2"]
        hubs.append(LoggedProcess(argv, cwd=workdir, env=env))
        port = free_port()
        argv = [sys.executable, "-m", "webapp", "serve", "--ensure-admin", "--threads", "2",
                "--host", "127.0.0.1", "--port", str(port), "--db", db_url,
                "--storage", str(storage), "--users-db", users]
        webs.append((LoggedProcess(argv, cwd=workdir, env=env), f"http://127.0.0.1:{port}"))
    return hubs, webs


def _hub_outcome(hub: LoggedProcess) -> str | None:
    """'listening', 'storage locked', or None while it is still starting; fail on anything else."""
    if "hub listening on" in hub.output:
        return "listening"
    if hub.proc.poll() is None:
        return None
    hub._reader.join(5)
    if "hub listening on" in hub.output:
        return "listening"
    if hub.proc.returncode == 2 and STORAGE_LOCKED in hub.output:
        return "storage locked"
    raise AssertionError(f"a hub exited ({hub.proc.returncode}) with something other than the "
                         f"storage lock:\n{hub.output[-3000:]}")


def _web_up(web: LoggedProcess, base_url: str) -> bool:
    if web.proc.poll() is not None:
        raise AssertionError(f"a web app exited ({web.proc.returncode}):\n{web.output[-3000:]}")
    return _http_status(f"{base_url}/api/v1/health") in (200, 503)


def _check_all_come_up(workdir: Path, db_url: str) -> None:
    hubs, webs = _start_all(workdir, db_url)
    processes = [*hubs, *(web for web, _ in webs)]
    with running(*processes):
        outcomes = [wait_for(lambda h=hub: _hub_outcome(h), 90, "each hub to listen or refuse")
                    for hub in hubs]
        for web, base_url in webs:
            wait_for(lambda w=web, u=base_url: _web_up(w, u), 90, "each web app to answer")
        assert outcomes.count("listening") == 1, outcomes
        assert outcomes.count("storage locked") == STARTS - 1, outcomes
        # one admin was created, and its password printed once
        assert sum("password:" in web.output for web, _ in webs) == 1
    for process in processes:
        assert "already exists" not in process.output, process.output[-3000:]
        assert "Traceback" not in process.output, process.output[-3000:]
    assert _version(db_url) == _head()


def test_hubs_and_web_apps_started_together_on_a_fresh_sqlite_catalog(tmp_path: Path) -> None:
    _check_all_come_up(tmp_path, f"sqlite:///{tmp_path / 'nvr.db'}")


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """One throwaway PostgreSQL cluster for the module."""
    require(None if postgres_available() else f"PostgreSQL: {postgres_unavailable_reason()}")
    with postgres_cluster("nvr") as url:
        yield url


def test_hubs_and_web_apps_started_together_on_a_fresh_postgres_catalog(
        cluster: str, tmp_path: Path) -> None:
    _check_all_come_up(tmp_path, create_database(cluster, "nvr_together"))


def test_processes_upgrading_one_fresh_postgres_catalog_all_succeed(cluster: str) -> None:
    url = create_database(cluster, "nvr_upgraders")
    upgraders = [_upgrader(url) for _ in range(8)]
    with running(*upgraders):
        for process in upgraders:
            wait_for(lambda p=process: p.proc.poll() is not None, 60, "the upgrade to finish")
    failed = [p.output for p in upgraders if p.proc.returncode != 0]
    assert not failed, failed[0]
    assert _version(url) == _head()
