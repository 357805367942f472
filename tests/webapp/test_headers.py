"""Security headers on every response; cookies Secure exactly when served over HTTPS."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from .helpers import Account, AuthActions

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "media-src 'self' blob:; connect-src 'self'; worker-src 'self' blob:; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def cookie_headers(response, name: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [h for h in response.headers.getlist("Set-Cookie") if h.startswith(name + "=")]


@pytest.mark.parametrize("path", ["/auth/login", "/", "/static/js/app.js", "/no-such-page",
                                  "/api/v1/nothing"])
def test_every_response_carries_the_security_headers(client: FlaskClient, path: str) -> None:
    with client.get(path) as response:
        headers = response.headers
    assert headers["Content-Security-Policy"] == CSP
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["X-Frame-Options"] == "DENY"


def test_pages_are_not_cached_but_static_files_may_be(client: FlaskClient, auth: AuthActions,
                                                      viewer_user: Account) -> None:
    auth.login(viewer_user)
    assert client.get("/").headers["Cache-Control"] == "no-store"
    with client.get("/static/js/app.js") as static:
        assert static.headers.get("Cache-Control") != "no-store"


def test_no_page_has_inline_script_or_style(client: FlaskClient, auth: AuthActions,
                                            admin_user: Account) -> None:
    pages = [client.get("/auth/login")]
    auth.login(admin_user)
    pages += [client.get(p) for p in ("/", "/users/", "/users/new", f"/users/{admin_user.id}/password")]
    for page in pages:
        html = page.get_data(as_text=True)
        assert "<script>" not in html and "<style" not in html and " style=" not in html
        assert " on" + "click=" not in html
        for src in html.split("<script")[1:]:
            assert src.lstrip().startswith("src="), src[:80]


def test_cookies_are_not_secure_over_plain_http(auth: AuthActions, viewer_user: Account) -> None:
    response = auth.login(viewer_user, remember=True)
    for name in ("nvr_session", "nvr_remember"):
        [header] = cookie_headers(response, name)
        assert "HttpOnly" in header and "SameSite=Lax" in header
        assert "Secure" not in header


def test_cookies_are_secure_over_https(client: FlaskClient, viewer_user: Account) -> None:
    https = {"base_url": "https://nvr.example"}
    response = AuthActions(client).login(viewer_user, remember=True, **https)
    for name in ("nvr_session", "nvr_remember"):
        [header] = cookie_headers(response, name)
        assert "Secure" in header and "HttpOnly" in header and "SameSite=Lax" in header


def test_x_forwarded_proto_counts_only_behind_a_trusted_proxy(make_app: Callable[..., Flask],
                                                             viewer_user: Account) -> None:
    forwarded = {"headers": {"X-Forwarded-Proto": "https"}}
    trusting = AuthActions(make_app(TRUSTED_PROXIES=1).test_client())
    [header] = cookie_headers(trusting.login(viewer_user, **forwarded), "nvr_session")
    assert "Secure" in header
    direct = AuthActions(make_app().test_client())
    [header] = cookie_headers(direct.login(viewer_user, **forwarded), "nvr_session")
    assert "Secure" not in header
