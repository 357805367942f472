"""Fixtures of the web app tests: an app on temp SQLite files, a client, users, a fake clock."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support.postgres import create_database, postgres_cluster, postgres_unavailable_reason
from tests.support.requirements import require
from webapp import create_app
from webapp.extensions import db
from webapp.models import ROLE_ADMIN, ROLE_VIEWER, User

from .helpers import (
    ADMIN_PASSWORD, VIEWER_PASSWORD, Account, AuthActions, FakeClock, base_config, dispose,
)

# Argon2id hashes of the test passwords (FAST_ARGON2 cost), reused across tests.
_HASHES: dict[str, str] = {}


@pytest.fixture(scope="session")
def migrated_dbs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrate a catalog and a users database once; each test gets copies of the files."""
    folder = tmp_path_factory.mktemp("migrated")
    dispose(create_app(base_config(folder)))
    return folder


@pytest.fixture
def clock() -> FakeClock:
    """The app's clock, moved by hand."""
    return FakeClock()


@pytest.fixture
def make_app(tmp_path: Path, migrated_dbs: Path,
             clock: FakeClock) -> Iterator[Callable[..., Flask]]:
    """Make apps on this test's database files (copies of migrated ones); extra keys override."""
    for source in migrated_dbs.glob("*.db*"):
        target = tmp_path / source.name
        if not target.exists():
            shutil.copy(source, target)
    apps: list[Flask] = []

    def make(**overrides: Any) -> Flask:
        app = create_app({**base_config(tmp_path), "CLOCK": clock, **overrides})
        apps.append(app)
        return app

    yield make
    for app in apps:
        dispose(app)


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """The web app on temp SQLite files, CSRF off (tests of CSRF turn it on)."""
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of ``app``."""
    return app.test_client()


@pytest.fixture
def make_user(app: Flask) -> Callable[..., Account]:
    """Create users directly in the users database."""

    def make(username: str, password: str, role: str = ROLE_VIEWER, active: bool = True) -> Account:
        with app.app_context():
            user = User(username=username, role=role, active=active,
                        created_at=app.config["CLOCK"]())
            if password not in _HASHES:
                user.set_password(password)
                _HASHES[password] = user.password_hash
            user.password_hash = _HASHES[password]  # one ~40 ms hash per password per run
            db.session.add(user)
            db.session.commit()
            return Account(user.id, username, password, role)

    return make


@pytest.fixture
def admin_user(make_user: Callable[..., Account]) -> Account:
    """An active admin."""
    return make_user("alice", ADMIN_PASSWORD, ROLE_ADMIN)


@pytest.fixture
def viewer_user(make_user: Callable[..., Account]) -> Account:
    """An active viewer."""
    return make_user("victor", VIEWER_PASSWORD, ROLE_VIEWER)


@pytest.fixture
def auth(client: FlaskClient) -> AuthActions:
    """Log ``client`` in and out."""
    return AuthActions(client)


@pytest.fixture(scope="module")
def pg_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster (one per module; each test makes its own database)."""
    require(postgres_unavailable_reason())
    with postgres_cluster("nvr_users") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def users_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A users database URL: a SQLite file, or a fresh database on the PostgreSQL cluster."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'users.db'}"
    return create_database(request.getfixturevalue("pg_server"), f"t_{tmp_path.name[-20:]}"
                           .replace("-", "_").lower())
