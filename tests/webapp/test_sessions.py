"""Sessions live on the server: logout, a new password and "sign out everywhere" end them."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from alembic import command
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, func, inspect, select, text

from webapp import users_migrations
from webapp.extensions import db
from webapp.models import ROLE_ADMIN, LoginSession

from .helpers import Account, AuthActions, FakeClock
from .served import login, request, served

COOKIES = ("nvr_session", "nvr_remember")


def saved_cookies(client: FlaskClient) -> dict[str, str]:
    """Return the values of the session and remember-me cookies the client holds."""
    return {name: cookie.value for name in COOKIES
            if (cookie := client.get_cookie(name)) is not None}


def replay(app: Flask, cookies: dict[str, str]) -> int:
    """GET / in a fresh client that sends only ``cookies``; return the status."""
    client = app.test_client()
    for name, value in cookies.items():
        client.set_cookie(name, value)
    return client.get("/").status_code


def session_rows(app: Flask) -> int:
    """Count the login_sessions rows."""
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(LoginSession)) or 0


def test_cookies_saved_before_logout_are_refused_after_it(
        client: FlaskClient, auth: AuthActions, viewer_user: Account, app: Flask) -> None:
    auth.login(viewer_user, remember=True)
    saved = saved_cookies(client)
    assert set(saved) == set(COOKIES)
    assert all(replay(app, {name: value}) == 200 for name, value in saved.items())
    auth.logout()
    for name, value in saved.items():
        assert replay(app, {name: value}) == 302, name
    assert replay(app, saved) == 302


def test_cookie_replay_after_logout_on_a_served_app(app: Flask, viewer_user: Account) -> None:
    with served(app) as port:
        answer = login(port, viewer_user.username, viewer_user.password, remember=True)
        assert answer.status == 302
        saved = {name: answer.cookies[name] for name in COOKIES}
        assert request(port, "GET", "/", cookies=saved).status == 200
        assert request(port, "GET", "/api/v1/cameras", cookies=saved).status == 200
        assert request(port, "POST", "/auth/logout", cookies=saved).status == 302
        for name in COOKIES:
            page = request(port, "GET", "/", cookies={name: saved[name]})
            assert (page.status, page.location.split("?")[0]) == (302, "/auth/login"), name
            assert request(port, "GET", "/api/v1/cameras",
                           cookies={name: saved[name]}).status == 401, name


def test_a_new_password_ends_the_other_sessions_but_not_the_admins_own(
        make_app: Callable[..., Flask], make_user: Callable, viewer_user: Account) -> None:
    admin = make_user("alice", "admin-password-123", ROLE_ADMIN)
    app = make_app()
    desk, phone, viewer = (AuthActions(app.test_client()) for _ in range(3))
    desk.login(admin)
    phone.login(admin, remember=True)
    viewer.login(viewer_user, remember=True)
    data = {"password": "brand-new-password", "confirm": "brand-new-password"}
    assert desk.client.post(f"/users/{admin.id}/password", data=data).status_code == 302
    assert desk.client.get("/users/").status_code == 200
    assert phone.client.get("/").status_code == 302
    assert desk.client.post(f"/users/{viewer_user.id}/password", data=data).status_code == 302
    assert viewer.client.get("/").status_code == 302


def test_sign_out_everywhere_ends_every_session_of_the_user(
        make_app: Callable[..., Flask], admin_user: Account, viewer_user: Account) -> None:
    app = make_app()
    admin, laptop, tablet = (AuthActions(app.test_client()) for _ in range(3))
    admin.login(admin_user)
    laptop.login(viewer_user, remember=True)
    tablet.login(viewer_user)
    saved = saved_cookies(laptop.client)
    page = admin.client.get("/users/").get_data(as_text=True)
    assert "2 signed-in sessions" in page and "Sign out everywhere" in page
    assert admin.client.post(f"/users/{viewer_user.id}/sessions/revoke").status_code == 302
    assert laptop.client.get("/").status_code == 302
    assert tablet.client.get("/").status_code == 302
    assert replay(app, {"nvr_remember": saved["nvr_remember"]}) == 302
    assert admin.client.post(f"/users/{admin_user.id}/sessions/revoke").status_code == 302
    assert admin.client.get("/users/").status_code == 200  # "everywhere else" for oneself


def test_viewers_cannot_sign_others_out(client: FlaskClient, auth: AuthActions,
                                        viewer_user: Account, admin_user: Account) -> None:
    auth.login(viewer_user)
    assert client.post(f"/users/{admin_user.id}/sessions/revoke").status_code == 403


def test_an_idle_session_expires_but_a_remembered_one_waits_longer(
        make_app: Callable[..., Flask], viewer_user: Account, clock: FakeClock) -> None:
    app = make_app()
    plain, remembered = AuthActions(app.test_client()), AuthActions(app.test_client())
    plain.login(viewer_user)
    remembered.login(viewer_user, remember=True)
    clock.advance(hours=2, minutes=1)
    assert plain.client.get("/").status_code == 302
    assert "session has expired" in plain.client.get("/auth/login").get_data(as_text=True)
    assert remembered.client.get("/").status_code == 200
    clock.advance(days=3, minutes=1)
    assert remembered.client.get("/").status_code == 302


def test_a_remembered_session_ends_at_its_absolute_limit(
        client: FlaskClient, auth: AuthActions, viewer_user: Account, clock: FakeClock) -> None:
    auth.login(viewer_user, remember=True)
    for _ in range(13):  # used every day, never idle
        clock.advance(days=1)
        assert client.get("/").status_code == 200
    clock.advance(days=1, minutes=1)
    assert client.get("/").status_code == 302


def test_dead_sessions_are_deleted_at_the_next_login(
        make_app: Callable[..., Flask], viewer_user: Account, clock: FakeClock) -> None:
    app = make_app()
    first = AuthActions(app.test_client())
    first.login(viewer_user)
    first.logout()
    AuthActions(app.test_client()).login(viewer_user)
    clock.advance(hours=3)
    assert session_rows(app) == 1  # the logged-out one went at the second login
    AuthActions(app.test_client()).login(viewer_user)
    assert session_rows(app) == 1  # the idle one went at the third


def test_the_session_records_address_and_browser(app: Flask, auth: AuthActions,
                                                 viewer_user: Account) -> None:
    auth.login(viewer_user, environ_base={"REMOTE_ADDR": "192.0.2.5"},
               headers={"User-Agent": "TestBrowser/1.0"})
    with app.app_context():
        row = db.session.scalars(select(LoginSession)).one()
    assert (row.address, row.user_agent, row.user_id) == ("192.0.2.5", "TestBrowser/1.0",
                                                          viewer_user.id)
    assert len(row.id) == 64  # a hash: the database holds no usable cookie


def test_the_migration_keeps_users_and_goes_back_down(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'users.db'}")
    config = users_migrations.alembic_config()
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "u0001")
            connection.execute(text(
                "INSERT INTO users (username, password_hash, role, active, created_at, "
                "session_epoch) VALUES ('old', 'h', 'viewer', 1, '2026-01-01 00:00:00', 7)"))
            command.upgrade(config, "u0002")
            assert "session_epoch" not in {c["name"] for c in inspect(connection).get_columns(
                "users")}
            command.downgrade(config, "u0001")
            assert connection.execute(text("SELECT username, session_epoch FROM users")).all() \
                == [("old", 0)]
            assert "login_sessions" not in inspect(connection).get_table_names()
    finally:
        engine.dispose()


def test_the_users_page_counts_only_live_sessions(
        make_app: Callable[..., Flask], admin_user: Account, viewer_user: Account,
        clock: FakeClock) -> None:
    app = make_app()
    AuthActions(app.test_client()).login(viewer_user)
    AuthActions(app.test_client()).login(viewer_user, remember=True)
    clock.advance(hours=2, minutes=1)  # the first one idled out
    admin = AuthActions(app.test_client())
    admin.login(admin_user)
    page = admin.client.get("/users/").get_data(as_text=True)
    assert re.findall(r"(\d+) signed-in sessions?\b", page) == ["1", "1"]  # alice, victor


def test_the_users_migrations_at_head_make_exactly_the_models_tables(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from webapp.models import UsersBase

    engine = create_engine(f"sqlite:///{tmp_path / 'users.db'}")
    try:
        users_migrations.upgrade(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"version_table": users_migrations.VERSION_TABLE})
            assert compare_metadata(context, UsersBase.metadata) == []
    finally:
        engine.dispose()
