"""Failed logins are limited per address and per (account, address); an attacked account is
slowed down, never locked against its owner; the counting is atomic and in the database."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

import pytest
from flask import Flask

from webapp.auth.throttle import ThrottleLimits

from .helpers import Account, AuthActions, FakeClock

ADDR_A = {"environ_base": {"REMOTE_ADDR": "192.0.2.10"}}
ADDR_B = {"environ_base": {"REMOTE_ADDR": "192.0.2.20"}}
HOME = {"environ_base": {"REMOTE_ADDR": "198.51.100.1"}}


def at(n: int) -> dict:
    """The environ of a request from attacker address number ``n``."""
    return {"environ_base": {"REMOTE_ADDR": f"203.0.113.{n}"}}


def fail(auth: AuthActions, username: str, times: int, **environ: object) -> None:
    """Send ``times`` logins with a wrong password, each checked and refused."""
    for _ in range(times):
        assert auth.login(username, "wrong-password!", **environ).status_code == 401


def test_the_account_delay_doubles_up_to_its_maximum() -> None:
    limits = ThrottleLimits(window=dt.timedelta(minutes=15), pair_max=5, address_max=20,
                            account_free=3, account_delay=dt.timedelta(seconds=2),
                            account_max_delay=dt.timedelta(seconds=60),
                            known_lifetime=dt.timedelta(days=30))
    delays = [limits.account_delay_after(n) for n in range(1, 10)]
    assert delays[:2] == [None, None]
    assert [d.total_seconds() for d in delays[2:] if d] == [2, 4, 8, 16, 32, 60, 60]


def test_five_failures_from_one_address_stop_that_address_not_the_owner(
        auth: AuthActions, admin_user: Account, clock: FakeClock) -> None:
    fail(auth, "alice", 5, **ADDR_A)
    refused = auth.login(admin_user, **ADDR_A)  # even the right password is not checked
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == str(15 * 60)
    assert "Too many attempts from your address. Try again in 900 s." in refused.get_data(
        as_text=True)
    assert auth.login(admin_user, **ADDR_B).status_code == 302  # no lock-out of the account
    clock.advance(minutes=15, seconds=1)
    auth.logout()
    assert auth.login(admin_user, **ADDR_A).status_code == 302  # the window passed


def test_the_pair_count_ignores_the_case_of_the_username(auth: AuthActions,
                                                         admin_user: Account) -> None:
    for name in ("alice", "ALICE", "Alice", "aLice", "alicE"):
        fail(auth, name, 1, **ADDR_A)
    assert auth.login(admin_user, **ADDR_A).status_code == 429


def test_one_address_guessing_many_accounts_is_stopped(
        make_app: Callable[..., Flask], viewer_user: Account) -> None:
    auth = AuthActions(make_app(LOGIN_ADDRESS_MAX_FAILURES=4).test_client())
    for name in ("u1", "u2", "u3", "u4"):
        fail(auth, name, 1, **ADDR_A)
    assert auth.login(viewer_user, **ADDR_A).status_code == 429
    assert auth.login(viewer_user, **ADDR_B).status_code == 302


def test_a_success_gives_its_check_back_and_clears_the_pair(
        make_app: Callable[..., Flask], viewer_user: Account) -> None:
    auth = AuthActions(make_app(LOGIN_ADDRESS_MAX_FAILURES=14).test_client())
    for _ in range(3):  # 4 failures then a success: the pair starts again each time
        fail(auth, "victor", 4, **ADDR_A)
        assert auth.login(viewer_user, **ADDR_A).status_code == 302
        auth.logout()
    # The address keeps its 12 failures (a success must not wipe an address's record) but
    # not the 3 successes: 2 more checks, not 0.
    fail(auth, "victor", 2, **ADDR_A)
    assert auth.login("victor", "wrong-password!", **ADDR_A).status_code == 429


def test_a_distributed_attack_slows_the_account_and_the_owner_still_gets_in(
        make_app: Callable[..., Flask], make_user: Callable, clock: FakeClock) -> None:
    app = make_app(LOGIN_ACCOUNT_SLOWDOWN_AFTER=4)
    owner = make_user("olga", "olga-password-123")
    auth = AuthActions(app.test_client())
    assert auth.login(owner, **HOME).status_code == 302  # home becomes a known address
    auth.logout()
    for n in range(4):
        fail(auth, "olga", 1, **at(n))
    slowed = auth.login("olga", "guess-5", **at(9))
    assert slowed.status_code == 429
    assert slowed.headers["Retry-After"] == "2"
    assert "logins are slowed down. Try again in 2 s." in slowed.get_data(as_text=True)
    assert auth.login(owner, **HOME).status_code == 302  # the owner, at home, right away
    auth.logout()
    clock.advance(seconds=2)
    fail(auth, "olga", 1, **at(10))  # one check after the delay, which then doubles
    assert auth.login("olga", "guess-6", **at(11)).headers["Retry-After"] == "4"
    new_place = auth.login(owner, **ADDR_B)  # the owner elsewhere waits like anyone
    assert new_place.status_code == 429
    clock.advance(seconds=4)
    assert auth.login(owner, **ADDR_B).status_code == 302


def test_failures_and_refusals_are_logged_without_the_password(
        auth: AuthActions, admin_user: Account, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for _ in range(5):
        auth.login("alice", "Secret-Attempt-42", **ADDR_A)
    auth.login(admin_user, **ADDR_A)
    text = caplog.text
    assert text.count("failed login for 'alice' from 192.0.2.10") == 5
    assert "refused login for 'alice' from 192.0.2.10: throttled (address) for another 900 s" \
        in text
    assert "Secret-Attempt-42" not in text
    assert admin_user.password not in text


def test_a_username_with_control_characters_is_escaped_in_the_log(
        auth: AuthActions, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    auth.login("eve\nINFO forged line", "wrong-password!")
    assert "'eve\\nINFO forged line'" in caplog.text
    assert "\nINFO forged line" not in caplog.text


def test_the_count_uses_the_forwarded_address_only_behind_a_trusted_proxy(
        make_app: Callable[..., Flask], make_user: Callable) -> None:
    account = make_user("pat", "pat-password-1")
    behind = AuthActions(make_app(TRUSTED_PROXIES=["192.0.2.10"]).test_client())
    fail(behind, "pat", 5, headers={"X-Forwarded-For": "198.51.100.7"}, **ADDR_A)
    other_client = {"headers": {"X-Forwarded-For": "198.51.100.8"}, **ADDR_A}
    assert behind.login(account, **other_client).status_code == 302
    direct = AuthActions(make_app().test_client())
    for n in range(5):
        direct.login("pat", "wrong-password!", headers={"X-Forwarded-For": f"203.0.113.{n}"},
                     **ADDR_B)
    assert direct.login(account, headers={"X-Forwarded-For": "203.0.113.99"},
                        **ADDR_B).status_code == 429
