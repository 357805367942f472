"""Logging in and out: CSRF, remember me, session expiry, safe `next` redirects."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from http.cookies import SimpleCookie

import pytest
from flask import Flask
from flask.testing import FlaskClient

from .helpers import Account, AuthActions, FakeClock, csrf_token_of, user_row


def set_cookies(response) -> dict[str, SimpleCookie]:  # type: ignore[no-untyped-def]
    """Parse the Set-Cookie headers of a response by cookie name."""
    cookies = {}
    for header in response.headers.getlist("Set-Cookie"):
        parsed = SimpleCookie()
        parsed.load(header)
        for name in parsed:
            cookies[name] = parsed
    return cookies


def test_login_page_is_public_and_has_a_csrf_field(make_app: Callable[..., Flask]) -> None:
    response = make_app(WTF_CSRF_ENABLED=True).test_client().get("/auth/login")
    assert response.status_code == 200
    assert 'name="csrf_token"' in response.get_data(as_text=True)


def test_correct_password_logs_in_and_lands_on_the_dashboard(
        client: FlaskClient, auth: AuthActions, admin_user: Account, app: Flask,
        clock: FakeClock) -> None:
    response = auth.login(admin_user)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    page = client.get("/")
    assert page.status_code == 200
    assert "alice" in page.get_data(as_text=True)
    assert user_row(app, admin_user.id).last_login_at == clock.now


def test_wrong_password_is_refused_with_one_message_for_any_cause(
        client: FlaskClient, auth: AuthActions, admin_user: Account, make_user: Callable) -> None:
    make_user("dora", "disabled-password-1", active=False)
    for username, password in [("alice", "wrong-password"), ("nobody", "whatever-password"),
                               ("dora", "disabled-password-1")]:
        response = auth.login(username, password)
        assert response.status_code == 401
        assert "Wrong username or password." in response.get_data(as_text=True)
        assert client.get("/").status_code == 302


def test_logout_ends_the_session(client: FlaskClient, auth: AuthActions,
                                 viewer_user: Account) -> None:
    auth.login(viewer_user)
    response = auth.logout()
    assert response.status_code == 302
    assert response.headers["Location"] == "/auth/login"
    assert client.get("/").status_code == 302


def test_logout_is_post_only(client: FlaskClient, auth: AuthActions, viewer_user: Account) -> None:
    auth.login(viewer_user)
    assert client.get("/auth/logout").status_code == 405
    assert client.get("/").status_code == 200


def test_login_without_csrf_token_is_refused(make_app: Callable[..., Flask],
                                             make_user: Callable) -> None:
    client = make_app(WTF_CSRF_ENABLED=True).test_client()
    make_user("carol", "carol-password-1")
    client.get("/auth/login")
    response = client.post("/auth/login", data={"username": "carol", "password": "carol-password-1"})
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302
    assert AuthActions(client).login("carol", "carol-password-1").status_code == 302


def test_logout_without_csrf_token_is_refused(make_app: Callable[..., Flask],
                                              make_user: Callable) -> None:
    client = make_app(WTF_CSRF_ENABLED=True).test_client()
    account = make_user("carol", "carol-password-1")
    AuthActions(client).login(account)
    assert client.post("/auth/logout").status_code == 400
    assert client.post("/auth/logout", data={"csrf_token": "forged"}).status_code == 400
    assert client.get("/").status_code == 200
    assert AuthActions(client).logout().status_code == 302
    assert client.get("/").status_code == 302


def test_every_page_carries_the_csrf_meta_tag(client: FlaskClient, auth: AuthActions,
                                              admin_user: Account) -> None:
    assert csrf_token_of(client.get("/auth/login"))
    auth.login(admin_user)
    for path in ("/", "/users/", "/users/new", "/no-such-page"):
        assert csrf_token_of(client.get(path))


def test_session_expires_after_its_lifetime(client: FlaskClient, auth: AuthActions,
                                            viewer_user: Account, clock: FakeClock) -> None:
    auth.login(viewer_user)
    for _ in range(6):  # a request every 1 h 59 min: the session never idles out
        clock.advance(hours=1, minutes=59)
        assert client.get("/").status_code == 200
    clock.advance(minutes=7)  # 12 h 1 min after the login
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/auth/login")
    assert "session has expired" in client.get("/auth/login").get_data(as_text=True)


def test_session_cookie_is_httponly_lax_and_permanent(client: FlaskClient, auth: AuthActions,
                                                      viewer_user: Account, app: Flask) -> None:
    response = auth.login(viewer_user)
    cookie = set_cookies(response)["nvr_session"]["nvr_session"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert not cookie["secure"]
    assert cookie["expires"]  # a permanent session, bounded by PERMANENT_SESSION_LIFETIME
    assert app.permanent_session_lifetime == dt.timedelta(hours=12)


def test_no_remember_cookie_without_remember_me(auth: AuthActions, viewer_user: Account) -> None:
    assert "nvr_remember" not in set_cookies(auth.login(viewer_user))


def test_remember_me_sets_a_long_httponly_lax_cookie(auth: AuthActions,
                                                     viewer_user: Account) -> None:
    response = auth.login(viewer_user, remember=True)
    cookie = set_cookies(response)["nvr_remember"]["nvr_remember"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    expires = dt.datetime.strptime(cookie["expires"], "%a, %d %b %Y %H:%M:%S GMT")
    days = (expires - dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)).days
    assert 13 <= days <= 14


def test_remember_me_logs_in_again_after_the_session_expired(
        client: FlaskClient, auth: AuthActions, viewer_user: Account, clock: FakeClock) -> None:
    auth.login(viewer_user, remember=True)
    clock.advance(hours=13)
    assert client.get("/").status_code == 200
    clock.advance(hours=11)
    assert client.get("/").status_code == 200  # the cookie started a new 12 h session


def test_logout_clears_the_remember_me_cookie(client: FlaskClient, auth: AuthActions,
                                              viewer_user: Account, clock: FakeClock) -> None:
    auth.login(viewer_user, remember=True)
    auth.logout()
    clock.advance(hours=13)
    assert client.get("/").status_code == 302


def test_a_disabled_user_loses_their_session(client: FlaskClient, auth: AuthActions,
                                             viewer_user: Account, app: Flask) -> None:
    from webapp.extensions import db
    from webapp.models import User

    auth.login(viewer_user, remember=True)
    with app.app_context():
        db.session.get(User, viewer_user.id).active = False
        db.session.commit()
    assert client.get("/").status_code == 302


def test_a_new_password_ends_other_sessions_and_remember_cookies(
        client: FlaskClient, auth: AuthActions, viewer_user: Account, app: Flask) -> None:
    from webapp.extensions import db
    from webapp.models import User

    auth.login(viewer_user, remember=True)
    with app.app_context():
        db.session.get(User, viewer_user.id).set_password("another-password-1")
        db.session.commit()
    assert client.get("/").status_code == 302


@pytest.mark.parametrize("target, expected", [
    ("/users/", "/users/"),
    ("/recordings?camera=porch&day=2026-03-01", "/recordings?camera=porch&day=2026-03-01"),
    ("//evil.com", "/"),
    ("//evil.com/users/", "/"),
    ("https://evil.com", "/"),
    ("http://localhost/users/", "/"),
    ("/\\evil.com", "/"),
    ("\\\\evil.com", "/"),
    ("/\t/evil.com", "/"),
    ("javascript:alert(1)", "/"),
    ("evil.com", "/"),
    ("", "/"),
])
def test_next_redirects_only_to_paths_on_this_site(client: FlaskClient, admin_user: Account,
                                                   target: str, expected: str) -> None:
    client.get("/auth/login")
    response = client.post("/auth/login", query_string={"next": target},
                           data={"username": admin_user.username, "password": admin_user.password})
    assert response.status_code == 302
    assert response.headers["Location"] == expected


def test_a_protected_page_sends_to_login_with_next_and_back(client: FlaskClient,
                                                            admin_user: Account) -> None:
    response = client.get("/users/?x=1")
    assert response.status_code == 302
    assert response.headers["Location"] == "/auth/login?next=/users/?x%3D1"
    login = client.post(response.headers["Location"],
                        data={"username": admin_user.username, "password": admin_user.password})
    assert login.headers["Location"] == "/users/?x=1"


def test_an_outdated_hash_is_upgraded_at_login(make_app: Callable[..., Flask], make_user: Callable,
                                               app: Flask) -> None:
    account = make_user("old", "old-hash-password")
    stronger = make_app(ARGON2_PARAMETERS={"time_cost": 3, "memory_cost": 19 * 1024, "parallelism": 1})
    AuthActions(stronger.test_client()).login(account)
    assert "$m=19456,t=3,p=1$" in user_row(stronger, account.id).password_hash
