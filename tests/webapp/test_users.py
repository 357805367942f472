"""Admins manage users; viewers cannot; no action leaves the system without an active admin."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from webapp.models import ROLE_ADMIN

from .helpers import Account, AuthActions, user_row

NEW = {"username": "newbie", "role": "viewer", "password": "newbie-password-1",
       "confirm": "newbie-password-1"}


@pytest.fixture
def admin_client(client: FlaskClient, auth: AuthActions, admin_user: Account) -> FlaskClient:
    """The client, logged in as the admin alice."""
    auth.login(admin_user)
    return client


def test_admin_sees_every_user(admin_client: FlaskClient, viewer_user: Account) -> None:
    page = admin_client.get("/users/").get_data(as_text=True)
    assert "alice" in page and "victor" in page


def test_admin_creates_a_user_who_can_then_log_in(admin_client: FlaskClient,
                                                  make_app: Callable) -> None:
    response = admin_client.post("/users/new", data=NEW)
    assert response.status_code == 302
    assert "Created user newbie" in admin_client.get("/users/").get_data(as_text=True)
    other = AuthActions(make_app().test_client())
    assert other.login("newbie", "newbie-password-1").status_code == 302


@pytest.mark.parametrize("change, message", [
    ({"username": "alice"}, "That username is taken."),
    ({"password": "short", "confirm": "short"}, "too short"),
    ({"confirm": "something-else-1"}, "The two passwords differ."),
    ({"username": " spaced "}, "must not be empty or start or end with a space"),
    ({"username": "tab\there"}, "control characters"),
    ({"role": "root"}, "Not a valid choice"),
])
def test_bad_new_user_input_is_refused_with_a_message(admin_client: FlaskClient, change: dict,
                                                      message: str) -> None:
    response = admin_client.post("/users/new", data={**NEW, **change})
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)


def test_disable_and_enable(admin_client: FlaskClient, viewer_user: Account, app: Flask,
                            make_app: Callable) -> None:
    assert admin_client.post(f"/users/{viewer_user.id}/disable").status_code == 302
    assert user_row(app, viewer_user.id).active is False
    assert AuthActions(make_app().test_client()).login(viewer_user).status_code == 401
    assert admin_client.post(f"/users/{viewer_user.id}/enable").status_code == 302
    assert user_row(app, viewer_user.id).active is True


def test_the_last_active_admin_cannot_be_disabled_or_demoted(admin_client: FlaskClient,
                                                            admin_user: Account, app: Flask) -> None:
    response = admin_client.post(f"/users/{admin_user.id}/disable", follow_redirects=True)
    assert "You cannot disable the last active admin." in response.get_data(as_text=True)
    response = admin_client.post(f"/users/{admin_user.id}/role", data={"role": "viewer"},
                                 follow_redirects=True)
    assert "You cannot make the last active admin a viewer." in response.get_data(as_text=True)
    row = user_row(app, admin_user.id)
    assert row.active and row.role == ROLE_ADMIN


def test_an_admin_may_step_down_when_another_admin_remains(admin_client: FlaskClient,
                                                           admin_user: Account, make_user: Callable,
                                                           app: Flask) -> None:
    make_user("bob", "bob-password-12", ROLE_ADMIN)
    assert admin_client.post(f"/users/{admin_user.id}/role", data={"role": "viewer"}).status_code == 302
    assert user_row(app, admin_user.id).role == "viewer"
    assert admin_client.get("/users/").status_code == 403  # the demotion took effect at once


def test_admin_promotes_a_viewer(admin_client: FlaskClient, viewer_user: Account,
                                 app: Flask) -> None:
    admin_client.post(f"/users/{viewer_user.id}/role", data={"role": "admin"})
    assert user_row(app, viewer_user.id).role == ROLE_ADMIN


def test_reset_password(admin_client: FlaskClient, viewer_user: Account,
                        make_app: Callable) -> None:
    viewer = AuthActions(make_app().test_client())
    viewer.login(viewer_user)
    data = {"password": "brand-new-password", "confirm": "brand-new-password"}
    assert admin_client.post(f"/users/{viewer_user.id}/password", data=data).status_code == 302
    assert viewer.client.get("/").status_code == 302  # the old session ended
    assert viewer.login(viewer_user).status_code == 401
    assert viewer.login("victor", "brand-new-password").status_code == 302


def test_an_admin_resetting_their_own_password_stays_logged_in(admin_client: FlaskClient,
                                                               admin_user: Account) -> None:
    data = {"password": "brand-new-password", "confirm": "brand-new-password"}
    assert admin_client.post(f"/users/{admin_user.id}/password", data=data).status_code == 302
    assert admin_client.get("/users/").status_code == 200


def test_api_token_is_shown_once_and_can_be_revoked(admin_client: FlaskClient, viewer_user: Account,
                                                    app: Flask) -> None:
    page = admin_client.post(f"/users/{viewer_user.id}/token")
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    token = re.search(r'value="(nvr_[^"]+)"', page.get_data(as_text=True)).group(1)
    assert token not in admin_client.get("/users/").get_data(as_text=True)
    assert user_row(app, viewer_user.id).api_token_hash
    assert app.test_client().get("/", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert admin_client.post(f"/users/{viewer_user.id}/token/revoke").status_code == 302
    assert user_row(app, viewer_user.id).api_token_hash is None
    assert app.test_client().get("/", headers={"Authorization": f"Bearer {token}"}).status_code == 302


def test_missing_user_is_404(admin_client: FlaskClient) -> None:
    assert admin_client.post("/users/999/disable").status_code == 404
    assert admin_client.get("/users/999/password").status_code == 404


@pytest.mark.parametrize("method, path", [
    ("GET", "/users/"), ("GET", "/users/new"), ("POST", "/users/new"),
    ("POST", "/users/{id}/disable"), ("POST", "/users/{id}/enable"), ("POST", "/users/{id}/role"),
    ("GET", "/users/{id}/password"), ("POST", "/users/{id}/password"),
    ("POST", "/users/{id}/token"), ("POST", "/users/{id}/token/revoke"),
])
def test_viewers_get_403_everywhere_in_user_management(client: FlaskClient, auth: AuthActions,
                                                       viewer_user: Account, admin_user: Account,
                                                       app: Flask, method: str, path: str) -> None:
    auth.login(viewer_user)
    before = user_row(app, admin_user.id)
    response = client.open(path.format(id=admin_user.id), method=method,
                           data={**NEW, "role": "viewer"})
    assert response.status_code == 403
    after = user_row(app, admin_user.id)
    assert (after.active, after.role, after.password_hash, after.api_token_hash) == \
        (before.active, before.role, before.password_hash, before.api_token_hash)


def test_viewers_see_no_users_link(client: FlaskClient, auth: AuthActions,
                                   viewer_user: Account) -> None:
    auth.login(viewer_user)
    assert 'href="/users/"' not in client.get("/").get_data(as_text=True)


def test_admins_see_the_users_link(admin_client: FlaskClient) -> None:
    assert 'href="/users/"' in admin_client.get("/").get_data(as_text=True)


def test_user_names_are_escaped_in_pages(admin_client: FlaskClient) -> None:
    evil = '<script>alert("x")</script>'
    admin_client.post("/users/new", data={**NEW, "username": evil})
    page = admin_client.get("/users/").get_data(as_text=True)
    assert evil not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page


def test_admin_actions_need_the_csrf_token(make_app: Callable[..., Flask], admin_user: Account,
                                           viewer_user: Account) -> None:
    client = make_app(WTF_CSRF_ENABLED=True).test_client()
    AuthActions(client).login(admin_user)
    assert client.post(f"/users/{viewer_user.id}/disable").status_code == 400
    assert client.post("/users/new", data=NEW).status_code == 400
