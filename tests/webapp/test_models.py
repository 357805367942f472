"""Passwords are hashed with argon2id at OWASP's cost or above, and never stored or logged plain."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from webapp.config import Config
from webapp.models import User

from .helpers import Account, AuthActions, user_row


def test_password_hash_is_argon2id(app: Flask, make_user: Callable) -> None:
    account = make_user("hashy", "hashy-password-1")
    stored = user_row(app, account.id).password_hash
    assert stored.startswith("$argon2id$v=19$")
    assert "hashy-password-1" not in stored


def test_production_cost_is_rfc9106_low_memory(make_app: Callable[..., Flask]) -> None:
    app = make_app(ARGON2_PARAMETERS=Config.ARGON2_PARAMETERS)
    with app.app_context():
        user = User(username="prod")
        user.set_password("production-password")
    assert user.password_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")


def test_check_password(app: Flask) -> None:
    with app.app_context():
        user = User(username="u")
        user.set_password("right-password-1")
        assert user.check_password("right-password-1")
        assert not user.check_password("wrong-password-1")
        assert not user.check_password("")
        user.password_hash = "not-a-hash"
        assert not user.check_password("right-password-1")


def test_same_password_gets_a_different_salt(app: Flask) -> None:
    with app.app_context():
        a, b = User(username="a"), User(username="b")
        a.set_password("same-password-1")
        b.set_password("same-password-1")
    assert a.password_hash != b.password_hash


def test_passwords_never_appear_in_logs(client: FlaskClient, auth: AuthActions, admin_user: Account,
                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    auth.login("alice", "wrong-but-logged?")
    auth.login(admin_user)
    client.post("/users/new", data={"username": "n", "role": "viewer", "password": "fresh-password-9",
                                    "confirm": "fresh-password-9"})
    client.post(f"/users/{admin_user.id}/password",
                data={"password": "reset-password-9", "confirm": "reset-password-9"})
    assert "logged in" in caplog.text and "created user" in caplog.text
    for secret in ("wrong-but-logged?", admin_user.password, "fresh-password-9", "reset-password-9"):
        assert secret not in caplog.text
