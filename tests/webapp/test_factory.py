"""The app factory: where the databases and the secret live, both schemas, the catalog query path."""

from __future__ import annotations

import datetime as dt
import sqlite3
import stat
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import text

from nvrlib.catalog.models import Camera, Segment
from webapp import create_app
from webapp.config import default_users_db, finalize, load_or_create_secret, settings_from
from webapp.extensions import db
from webapp.models import User

from .helpers import UTC, base_config, dispose


def tables(path: Path) -> set[str]:
    """Return the table names of a SQLite file."""
    with closing(sqlite3.connect(path)) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def test_users_db_defaults_to_a_file_beside_a_sqlite_catalog(tmp_path: Path) -> None:
    assert default_users_db(f"sqlite:///{tmp_path}/nvr.db") == f"sqlite:///{tmp_path}/users.db"


def test_users_db_of_a_postgres_catalog_is_a_local_sqlite_file(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    expected = f"sqlite:///{tmp_path}/data/users.db"
    assert default_users_db("postgresql+psycopg://nvr:pw@db/nvr") == expected


def test_relative_sqlite_paths_resolve_against_the_working_folder_like_the_hub(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = {"SQLALCHEMY_DATABASE_URI": "sqlite:///data/nvr.db", "STORAGE_ROOT": "data/recordings"}
    finalize(config)
    assert config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path}/data/nvr.db"
    assert config["SQLALCHEMY_BINDS"] == {"users": f"sqlite:///{tmp_path}/data/users.db"}
    assert config["STORAGE_ROOT"] == str(tmp_path / "data" / "recordings")


def test_secret_key_is_generated_once_with_mode_600_and_reused(tmp_path: Path) -> None:
    config = base_config(tmp_path)
    del config["SECRET_KEY"]
    first = create_app(config)
    second = create_app(config)
    secret_file = tmp_path / "webapp.secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert first.secret_key == second.secret_key == secret_file.read_text().strip()
    assert len(first.secret_key) >= 64
    dispose(first)
    dispose(second)


def test_an_empty_secret_file_is_an_error_not_a_blank_key(tmp_path: Path) -> None:
    (tmp_path / "webapp.secret").write_text("\n")
    with pytest.raises(Exception, match="empty"):
        load_or_create_secret(tmp_path / "webapp.secret")


def test_both_schemas_are_created_at_start_and_users_stay_out_of_the_catalog(
        app: Flask, make_user: Callable, tmp_path: Path) -> None:
    make_user("someone", "long-enough-password")
    catalog, users = tables(tmp_path / "nvr.db"), tables(tmp_path / "users.db")
    assert {"cameras", "runs", "segments", "alembic_version"} <= catalog
    assert "users" not in catalog
    assert users == {"users", "login_sessions", "login_counters", "login_known_addresses",
                     "user_faces", "users_alembic_version"}
    with closing(sqlite3.connect(tmp_path / "users.db")) as conn:
        assert conn.execute("SELECT username FROM users").fetchall() == [("someone",)]


def test_migrations_at_start_are_idempotent(make_app: Callable[..., Flask],
                                            make_user: Callable) -> None:
    make_user("kept", "long-enough-password")
    again = make_app()
    with again.app_context():
        assert db.session.query(User).count() == 1


def test_both_databases_use_wal_and_a_busy_timeout(app: Flask) -> None:
    with app.app_context():
        for engine in db.engines.values():
            with engine.connect() as conn:
                assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
                assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 5000


def test_catalog_models_are_queried_through_db_session(app: Flask) -> None:
    start = dt.datetime(2026, 3, 1, 11, 0, tzinfo=UTC)
    with app.app_context():
        camera = Camera(name="porch", location="front")
        db.session.add(camera)
        db.session.flush()
        db.session.add(Segment(camera_id=camera.id, start_time=start,
                               end_time=start + dt.timedelta(seconds=10), duration=10.0,
                               size_bytes=1000, path="porch/2026-03-01/a.ts"))
        db.session.commit()
        assert db.session.get(Camera, camera.id).name == "porch"
        assert db.session.query(Segment).one().end_time == start + dt.timedelta(seconds=10)
    catalog = Path(app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///"))
    with closing(sqlite3.connect(catalog)) as conn:
        assert conn.execute("SELECT name FROM cameras").fetchall() == [("porch",)]


def test_settings_come_from_the_hub_file_and_its_webapp_table_and_flags_win(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text('db = "sqlite:////srv/nvr.db"\nstorage = "/srv/rec"\n\n'
                      '[webapp]\nhost = "127.0.0.1"\nport = 9000\nusers_db = "sqlite:////srv/u.db"\n'
                      'storage_mounts = ["/mnt/hub-b"]\n')
    settings = settings_from(config, {"port": 9100, "storage": None})
    assert settings == {"host": "127.0.0.1", "port": 9100, "db": "sqlite:////srv/nvr.db",
                        "storage": "/srv/rec", "storage_mounts": ["/mnt/hub-b"],
                        "users_db": "sqlite:////srv/u.db",
                        "trusted_proxies": [], "public_metrics": False, "face_signin": False,
                        "disk_low_percent": 10.0,
                        "tls_cert": None, "tls_key": None, "hsts_max_age": 31536000,
                        "allow_local_camera_urls": False, "ffmpeg": None}


def test_an_unknown_webapp_key_is_named_in_the_error(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text('[webapp]\nprot = 9000\n')
    with pytest.raises(Exception, match="unknown key 'prot'"):
        settings_from(config, {})


def test_weak_argon2_parameters_are_refused(tmp_path: Path) -> None:
    config = {**base_config(tmp_path), "ARGON2_PARAMETERS": {"time_cost": 1, "memory_cost": 8192}}
    with pytest.raises(ValueError, match="below OWASP"):
        create_app(config)
