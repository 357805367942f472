"""Errors answer with a page, or with {"error": ...} JSON under /api/; a 500 rolls back."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Blueprint, Flask, abort
from flask.testing import FlaskClient

from webapp.extensions import db
from webapp.models import User

from .helpers import Account, AuthActions

boom_bp = Blueprint("boom", __name__)


@boom_bp.route("/boom")
def boom():  # type: ignore[no-untyped-def]
    """Change the session, then fail."""
    db.session.add(User(username="half-made", password_hash="x"))
    db.session.flush()
    raise RuntimeError("secret internals")


@boom_bp.route("/api/v1/boom")
def api_boom():  # type: ignore[no-untyped-def]
    """Fail inside the API."""
    raise RuntimeError("secret internals")


@boom_bp.route("/api/v1/teapot/<int:code>")
def api_abort(code: int):  # type: ignore[no-untyped-def]
    """Abort with a chosen status."""
    abort(code, "chosen failure")


@boom_bp.route("/api/v1/post-only", methods=["POST"])
def api_post_only():  # type: ignore[no-untyped-def]
    """Accept only POST."""
    return {"ok": True}


@pytest.fixture
def logged_in(client: FlaskClient, auth: AuthActions, viewer_user: Account) -> FlaskClient:
    """The client, logged in as a viewer."""
    auth.login(viewer_user)
    return client


def test_unknown_page_is_a_404_page(logged_in: FlaskClient) -> None:
    response = logged_in.get("/no/such/page")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "404 · Not Found" in response.get_data(as_text=True)


def test_unknown_api_path_is_404_json(logged_in: FlaskClient) -> None:
    response = logged_in.get("/api/v1/nothing")
    assert response.status_code == 404
    assert response.is_json and "error" in response.get_json()


def test_wrong_method_is_405_with_allow(logged_in: FlaskClient) -> None:
    response = logged_in.get("/auth/logout")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]
    assert "405" in response.get_data(as_text=True)


def test_too_large_body_is_413(logged_in: FlaskClient) -> None:
    response = logged_in.post("/auth/logout", data={"csrf_token": "x" * (2 * 1024 * 1024)})
    assert response.status_code == 413


@pytest.mark.parametrize("code", [400, 403, 404, 413, 429])
def test_api_errors_are_json_with_the_status(make_app: Callable[..., Flask], viewer_user: Account,
                                             code: int) -> None:
    app = make_app()
    app.register_blueprint(boom_bp)
    client = app.test_client()
    AuthActions(client).login(viewer_user)
    response = client.get(f"/api/v1/teapot/{code}")
    assert response.status_code == code
    assert response.get_json() == {"error": "chosen failure"}


def test_api_wrong_method_is_405_json(make_app: Callable[..., Flask], viewer_user: Account) -> None:
    app = make_app()
    app.register_blueprint(boom_bp)
    client = app.test_client()
    AuthActions(client).login(viewer_user)
    response = client.get("/api/v1/post-only")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]
    assert "error" in response.get_json()


def test_500_rolls_back_and_hides_the_details(make_app: Callable[..., Flask],
                                              viewer_user: Account) -> None:
    app = make_app(TESTING=False)
    app.register_blueprint(boom_bp)
    client = app.test_client()
    AuthActions(client).login(viewer_user)
    page = client.get("/boom")
    assert page.status_code == 500
    assert "secret internals" not in page.get_data(as_text=True)
    api = client.get("/api/v1/boom")
    assert api.status_code == 500 and "error" in api.get_json()
    with app.app_context():
        assert db.session.query(User).filter_by(username="half-made").count() == 0
    assert client.get("/").status_code == 200  # the next request works


NAVIGATION = {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document",
              "Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def test_an_api_error_a_browser_navigated_to_is_a_page_with_a_way_back(
        logged_in: FlaskClient) -> None:
    # e.g. the player's "Export this range" form, for a camera with no footage there
    url = "/api/v1/export/nosuch.mp4?start=2026-03-01T10:00:00Z&end=2026-03-01T10:01:00Z"
    referrer = "http://localhost/recordings/play?camera=nosuch"
    response = logged_in.get(url, headers={**NAVIGATION, "Referer": referrer})
    assert response.status_code == 404 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "404 · Not Found" in page and "nosuch" in page
    assert f'href="{referrer.replace("&", "&amp;")}"' in page
    # an old browser: no Sec-Fetch-*, but it prefers HTML
    old = logged_in.get(url, headers={"Accept": NAVIGATION["Accept"]})
    assert old.mimetype == "text/html"
    # scripts, fetch() and curl keep getting JSON
    for headers in ({"Sec-Fetch-Mode": "cors", "Accept": "*/*"}, {"Accept": "*/*"},
                    {"Accept": "application/json"}):
        assert logged_in.get(url, headers=headers).get_json()["error"], headers


def test_a_referrer_from_another_site_gets_no_back_link(logged_in: FlaskClient) -> None:
    response = logged_in.get("/api/v1/nothing",
                             headers={**NAVIGATION, "Referer": "https://evil.example/x"})
    assert "evil.example" not in response.get_data(as_text=True)
