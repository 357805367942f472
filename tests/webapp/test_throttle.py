"""Failed logins are throttled per account and per address, and logged without passwords."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

import pytest
from flask import Flask

from webapp.auth.throttle import LoginThrottle

from .helpers import Account, AuthActions, FakeClock

ADDR_A = {"environ_base": {"REMOTE_ADDR": "192.0.2.10"}}
ADDR_B = {"environ_base": {"REMOTE_ADDR": "192.0.2.20"}}


def fail(auth: AuthActions, username: str, times: int, **environ: object) -> None:
    """Send ``times`` logins with a wrong password."""
    for _ in range(times):
        assert auth.login(username, "wrong-password!", **environ).status_code == 401


def test_throttle_locks_a_key_after_max_failures_in_the_window(clock: FakeClock) -> None:
    throttle = LoginThrottle(clock, max_failures=3, window=dt.timedelta(minutes=15),
                             lock=dt.timedelta(minutes=15))
    assert throttle.record_failure(["k"]) == []
    clock.advance(minutes=16)  # the first failure falls out of the window
    assert throttle.record_failure(["k"]) == []
    assert throttle.record_failure(["k"]) == []
    assert throttle.retry_after(["k"]) == 0
    assert throttle.record_failure(["k", "other"]) == ["k"]
    assert throttle.retry_after(["k"]) == 15 * 60
    assert throttle.retry_after(["other"]) == 0
    clock.advance(minutes=15)
    assert throttle.retry_after(["k"]) == 0


def test_five_failures_lock_the_account_even_for_the_right_password(
        auth: AuthActions, admin_user: Account, clock: FakeClock) -> None:
    fail(auth, "alice", 5, **ADDR_A)
    locked = auth.login(admin_user, **ADDR_B)  # another address: the account itself is locked
    assert locked.status_code == 429
    assert locked.headers["Retry-After"] == str(15 * 60)
    assert "Too many failed logins" in locked.get_data(as_text=True)
    clock.advance(minutes=14)
    assert auth.login(admin_user, **ADDR_B).status_code == 429
    clock.advance(minutes=1, seconds=1)
    assert auth.login(admin_user, **ADDR_B).status_code == 302


def test_the_account_lock_ignores_the_case_of_the_username(auth: AuthActions,
                                                           admin_user: Account) -> None:
    for name in ("alice", "ALICE", "Alice", "aLice", "alicE"):
        fail(auth, name, 1, **ADDR_A)
    assert auth.login(admin_user, **ADDR_B).status_code == 429


def test_five_failures_from_one_address_lock_that_address_for_every_account(
        auth: AuthActions, admin_user: Account, viewer_user: Account) -> None:
    for name in ("u1", "u2", "u3", "u4", "u5"):
        fail(auth, name, 1, **ADDR_A)
    assert auth.login(viewer_user, **ADDR_A).status_code == 429
    assert auth.login(viewer_user, **ADDR_B).status_code == 302


def test_a_success_resets_the_account_count(auth: AuthActions, viewer_user: Account) -> None:
    fail(auth, "victor", 4, **ADDR_A)
    assert auth.login(viewer_user, **ADDR_A).status_code == 302
    auth.logout()
    fail(auth, "victor", 1, **ADDR_B)
    assert auth.login(viewer_user, **ADDR_B).status_code == 302


def test_failures_and_locks_are_logged_without_the_password(
        auth: AuthActions, admin_user: Account, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for _ in range(5):
        auth.login("alice", "Secret-Attempt-42", **ADDR_A)
    auth.login(admin_user, **ADDR_A)
    text = caplog.text
    assert text.count("failed login for 'alice' from 192.0.2.10") == 5
    assert "locked logins for account 'alice'" in text
    assert "locked logins for address '192.0.2.10'" in text
    assert "refused login for 'alice' from 192.0.2.10: locked" in text
    assert "Secret-Attempt-42" not in text
    assert admin_user.password not in text


def test_a_username_with_control_characters_is_escaped_in_the_log(
        auth: AuthActions, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    auth.login("eve\nINFO forged line", "wrong-password!")
    assert "'eve\\nINFO forged line'" in caplog.text
    assert "\nINFO forged line" not in caplog.text


def test_the_lock_counts_the_forwarded_address_only_behind_a_trusted_proxy(
        make_app: Callable[..., Flask], make_user: Callable) -> None:
    account = make_user("pat", "pat-password-1")
    behind = AuthActions(make_app(TRUSTED_PROXIES=["192.0.2.10"]).test_client())
    for _ in range(5):
        behind.login("pat-typo", "wrong-password!",
                     headers={"X-Forwarded-For": "198.51.100.7"}, **ADDR_A)
    other_client = {"headers": {"X-Forwarded-For": "198.51.100.8"}, **ADDR_A}
    assert behind.login(account, **other_client).status_code == 302
    direct = AuthActions(make_app().test_client())
    for n in range(5):
        direct.login(f"x{n}", "wrong-password!", headers={"X-Forwarded-For": f"203.0.113.{n}"},
                     **ADDR_B)
    assert direct.login(account, headers={"X-Forwarded-For": "203.0.113.99"},
                        **ADDR_B).status_code == 429
