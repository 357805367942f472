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


def test_x_forwarded_proto_counts_only_from_a_trusted_proxy_address(
        make_app: Callable[..., Flask], viewer_user: Account) -> None:
    forwarded = {"headers": {"X-Forwarded-Proto": "https"}}
    behind = make_app(TRUSTED_PROXIES=["127.0.0.1"])
    [header] = cookie_headers(AuthActions(behind.test_client()).login(viewer_user, **forwarded),
                              "nvr_session")
    assert "Secure" in header
    stranger = {"environ_base": {"REMOTE_ADDR": "192.0.2.99"}, **forwarded}
    [header] = cookie_headers(AuthActions(behind.test_client()).login(viewer_user, **stranger),
                              "nvr_session")
    assert "Secure" not in header
    direct = AuthActions(make_app().test_client())
    [header] = cookie_headers(direct.login(viewer_user, **forwarded), "nvr_session")
    assert "Secure" not in header


def test_hsts_only_over_https(make_app: Callable[..., Flask]) -> None:
    app = make_app(TRUSTED_PROXIES=["10.0.0.0/8"])
    https = app.test_client().get("/auth/login", base_url="https://nvr.example")
    assert https.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert "Strict-Transport-Security" not in app.test_client().get("/auth/login").headers
    proxied = app.test_client().get("/auth/login", headers={"X-Forwarded-Proto": "https"},
                                    environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert "Strict-Transport-Security" in proxied.headers
    spoofed = app.test_client().get("/auth/login", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" not in spoofed.headers
    quiet = make_app(HSTS_MAX_AGE=0).test_client()
    assert "Strict-Transport-Security" not in quiet.get(
        "/auth/login", base_url="https://nvr.example").headers
