"""The hub's command line: clear errors for a taken port, a locked storage, a bad config."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys

from tests.support.procs import Hub, free_port


def run_hub(*args: str, cwd) -> subprocess.CompletedProcess[str]:
    """Run `python -m recorder` to completion (for start-up failures)."""
    return subprocess.run([sys.executable, "-m", "recorder", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_taken_port_is_a_clear_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_hub("--listen", f"127.0.0.1:{port}", "--storage", str(tmp_path / "rec"),
                       "--db", f"sqlite:///{tmp_path / 'nvr.db'}", cwd=tmp_path)
    assert done.returncode == 1
    assert "cannot start" in done.stderr and "address already in use" in done.stderr.lower()


def test_second_hub_on_the_same_storage_refuses_to_start(tmp_path):
    first = Hub(tmp_path).start()
    try:
        done = run_hub("--listen", f"127.0.0.1:{free_port()}", "--storage", str(first.storage),
                       "--db", f"sqlite:///{tmp_path / 'other.db'}", cwd=tmp_path)
        assert done.returncode == 2
        assert "another hub is recording into" in done.stderr
    finally:
        assert first.stop() == 0


def test_bad_config_names_the_key(tmp_path):
    config = tmp_path / "hub.toml"
    config.write_text("segment_secs = 5\n")
    done = run_hub("--config", str(config), cwd=tmp_path)
    assert done.returncode == 2
    assert "unknown key 'segment_secs'" in done.stderr


def test_catalog_is_sqlite_wal_with_full_sync(tmp_path):
    hub = Hub(tmp_path).start()
    try:
        with sqlite3.connect(hub.db_path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        from nvrlib.catalog.db import make_engine

        engine = make_engine(hub.db_url)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        engine.dispose()
    finally:
        assert hub.stop() == 0


def test_idle_hub_stops_on_sigterm_with_status_0(tmp_path):
    hub = Hub(tmp_path).start()
    assert hub.stop() == 0
    assert "hub stopped" in hub.output


def test_migrate_command_brings_the_catalog_to_head_and_exits(tmp_path):
    from tests.support.upgrades import head

    url = f"sqlite:///{tmp_path / 'nvr.db'}"
    done = run_hub("migrate", "--db", url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"catalog {url} is at revision {head()}"
    assert run_hub("migrate", "--db", url, cwd=tmp_path).returncode == 0  # idempotent
    config = tmp_path / "bad.toml"
    config.write_text("db = 5\n")
    bad = run_hub("migrate", "--config", str(config), cwd=tmp_path)
    assert bad.returncode == 2 and "db" in bad.stderr
