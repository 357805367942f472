"""The catalog, the users database, the secret key and the ingest token are the service's alone:
created 0600, and tightened at start (with a log line) when an older install left them 0644."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import text

from nvrlib.catalog.db import make_engine
from recorder.config import build_config
from webapp.config import Config, finalize


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def open_umask():
    """A umask that would leave new files world-readable, as on most systems (022)."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def write_through(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE IF NOT EXISTS t (x INTEGER)"))
        connection.execute(text("INSERT INTO t VALUES (1)"))
    with engine.connect() as reader:  # keeps -wal and -shm on disk while we look
        reader.execute(text("SELECT count(*) FROM t"))
        for suffix in ("", "-wal", "-shm"):
            path = Path(url.removeprefix("sqlite:///") + suffix)
            assert mode(path) == 0o600, (path, oct(mode(path)))
    engine.dispose()


def test_a_new_catalog_and_its_wal_and_shm_are_0600(tmp_path: Path) -> None:
    write_through(f"sqlite:///{tmp_path / 'nvr.db'}")


def test_an_old_world_readable_catalog_is_tightened_with_a_log_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    database = tmp_path / "nvr.db"
    write_through(f"sqlite:///{database}")
    for suffix in ("", "-wal"):
        Path(f"{database}{suffix}").touch()
        os.chmod(f"{database}{suffix}", 0o644)
    with caplog.at_level(logging.WARNING, logger="nvrlib.private_files"):
        make_engine(f"sqlite:///{database}").dispose()
    assert mode(database) == 0o600 and mode(Path(f"{database}-wal")) == 0o600
    assert f"{database} was mode 0644" in caplog.text and f"{database}-wal was mode 0644" in caplog.text


def test_a_group_readable_catalog_set_up_on_purpose_is_left_alone(tmp_path: Path) -> None:
    database = tmp_path / "nvr.db"
    database.touch()
    os.chmod(database, 0o640)
    make_engine(f"sqlite:///{database}").dispose()
    assert mode(database) == 0o640


def web_config(tmp_path: Path) -> dict:
    config = {k: getattr(Config, k) for k in dir(Config) if k.isupper()}
    config.update(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'nvr.db'}",
                  STORAGE_ROOT=str(tmp_path / "storage"))
    finalize(config)
    return config


def test_the_web_app_creates_its_users_database_and_secret_key_0600(tmp_path: Path) -> None:
    web_config(tmp_path)
    for name in ("users.db", "nvr.db", "webapp.secret"):
        assert mode(tmp_path / name) == 0o600, name


def test_the_web_app_tightens_an_old_users_database_and_secret_key(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    web_config(tmp_path)
    for name in ("users.db", "webapp.secret"):
        os.chmod(tmp_path / name, 0o644)
    with caplog.at_level(logging.WARNING, logger="nvrlib.private_files"):
        web_config(tmp_path)
    for name in ("users.db", "webapp.secret"):
        assert mode(tmp_path / name) == 0o600
        assert f"{tmp_path / name} was mode 0644" in caplog.text


def test_the_hub_tightens_its_ingest_token_file(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    token = tmp_path / "ingest.token"
    token.write_text("t0ken-value\n")
    os.chmod(token, 0o644)
    with caplog.at_level(logging.WARNING, logger="nvrlib.private_files"):
        config = build_config({}, {"ingest_token_file": str(token)})
    assert config.ingest_token == "t0ken-value" and mode(token) == 0o600
    assert f"{token} was mode 0644" in caplog.text
