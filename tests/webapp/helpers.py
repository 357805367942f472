"""Helpers of the web app tests: a fake clock, accounts, logging in with the CSRF token."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from nvrlib.catalog.models import utcnow
from webapp.extensions import db
from webapp.models import User

UTC = dt.timezone.utc
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
# OWASP's minimum argon2id cost: still a real argon2id hash, three times faster than production's.
FAST_ARGON2 = {"time_cost": 2, "memory_cost": 19 * 1024, "parallelism": 1}
ADMIN_PASSWORD = "admin-password-123"
VIEWER_PASSWORD = "viewer-password-123"


def base_config(folder: Path) -> dict[str, Any]:
    """Return the test config of an app whose catalog and users database live in ``folder``."""
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'nvr.db'}",
        "STORAGE_ROOT": str(folder / "recordings"),
        "WTF_CSRF_ENABLED": False,
        "ARGON2_PARAMETERS": FAST_ARGON2,
    }


def dispose(app: Flask) -> None:
    """Close the app's database connections (SQLite then checkpoints and drops its WAL)."""
    with app.app_context():
        for engine in db.engines.values():
            engine.dispose()


class FakeClock:
    """A clock the test moves by hand; the app reads it through config CLOCK."""

    def __init__(self, start: dt.datetime = dt.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        """Move the clock forward by a timedelta's keyword arguments (hours=13, ...)."""
        self.now += dt.timedelta(**delta)


@dataclass(frozen=True)
class Account:
    """A user the test created, with the password it was given."""

    id: int
    username: str
    password: str
    role: str


def csrf_token_of(response: TestResponse) -> str:
    """Return the CSRF token a page carries in its meta tag."""
    match = CSRF_META.search(response.get_data(as_text=True))
    assert match, "page has no csrf-token meta tag"
    return match.group(1)


class AuthActions:
    """Log the test client in and out (with the CSRF token, whether or not it is checked)."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def login(self, account: Account | str, password: str | None = None, remember: bool = False,
              next_url: str | None = None, **environ: Any) -> TestResponse:
        """POST the login form; ``account`` is an Account or a username."""
        username = account.username if isinstance(account, Account) else account
        if password is None and isinstance(account, Account):
            password = account.password
        token = csrf_token_of(self.client.get("/auth/login", **environ))
        data = {"username": username, "password": password or "", "csrf_token": token}
        if remember:
            data["remember"] = "y"
        url = "/auth/login" + (f"?next={next_url}" if next_url else "")
        return self.client.post(url, data=data, **environ)

    def logout(self) -> TestResponse:
        """POST the logout form with the CSRF token of the start page."""
        token = csrf_token_of(self.client.get("/"))
        return self.client.post("/auth/logout", data={"csrf_token": token})


def user_row(app: Flask, user_id: int) -> User:
    """Return a fresh copy of a user from the users database."""
    with app.app_context():
        user = db.session.get(User, user_id)
        assert user is not None
        db.session.expunge(user)
        return user


def api_token_user(app: Flask, username: str, role: str) -> str:
    """Add a user who signs in only with an API token (no password); return the token."""
    with app.app_context():
        user = User(username=username, role=role, created_at=utcnow(), password_hash="!")
        token = user.new_api_token(utcnow())
        db.session.add(user)
        db.session.commit()
    return token
