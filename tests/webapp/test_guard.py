"""Every route but login and static files needs a login; the API answers 401/403 in JSON."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from flask import Blueprint, Flask, g, jsonify
from flask_login import current_user
from werkzeug.exceptions import NotFound
from werkzeug.routing import Rule

from webapp.extensions import db
from webapp.models import User
from webapp.security import MACHINE_ENDPOINTS, PUBLIC_ENDPOINTS, admin_required

from .helpers import Account, AuthActions, csrf_token_of

# The one list of routes an anonymous visitor may reach. Widening it needs a reason.
# monitoring.health: a load balancer's probe, which has no credentials (counts only, no names).
ALLOWED_PUBLIC = {"auth.login", "auth.login_face", "static", "vendor_static", "favicon", "monitoring.health"}

# Dummy values by converter, tried in order until the URL routes to the rule under test.
CANDIDATES = {
    "int": ["1"], "float": ["1.5"], "uuid": ["00000000-0000-0000-0000-000000000001"],
    "path": ["a/b", "a"], "default": ["x", "porch", "a1", "2026-03-01", "1"],
}
ARGUMENT = re.compile(r"<(?:(?P<conv>\w+)(?:\((?P<args>[^)]*)\))?:)?(?P<name>\w+)>")

api_bp = Blueprint("api_probe", __name__, url_prefix="/api/v1/probe")


@api_bp.route("/whoami")
def whoami():  # type: ignore[no-untyped-def]
    """Say who is calling and how they authenticated."""
    return jsonify(user=current_user.username, via=g.get("auth_method", "session"))


@api_bp.route("/echo", methods=["POST"])
def echo():  # type: ignore[no-untyped-def]
    """A state-changing API call."""
    return jsonify(ok=True, user=current_user.username)


@api_bp.route("/admin-only", methods=["GET", "POST"])
@admin_required
def admin_only():  # type: ignore[no-untyped-def]
    """An admin-only API call."""
    return jsonify(ok=True)


def candidate_urls(rule: Rule) -> Iterator[str]:
    """Yield URLs for ``rule`` with dummy values in place of its arguments."""
    options: list[list[str]] = []
    for match in ARGUMENT.finditer(rule.rule):
        conv = match.group("conv") or "default"
        if conv == "any":
            options.append([o.strip().strip("'\"") for o in (match.group("args") or "").split(",")])
        else:
            options.append(CANDIDATES.get(conv, CANDIDATES["default"]))
    for i in range(max([1, *map(len, options)])):
        values = iter([opts[min(i, len(opts) - 1)] for opts in options])
        yield ARGUMENT.sub(lambda _m: next(values), rule.rule)


def url_for_rule(app: Flask, rule: Rule, method: str) -> str:
    """Return a URL that routes to ``rule`` for ``method``."""
    adapter = app.url_map.bind("localhost")
    for url in candidate_urls(rule):
        try:
            endpoint, _ = adapter.match(url, method=method)
        except NotFound:
            continue
        if endpoint == rule.endpoint:
            return url
    raise AssertionError(f"cannot build a URL for {rule.rule} ({rule.endpoint}); add a candidate")


def probe_app(make_app: Callable[..., Flask], **config: object) -> Flask:
    """The app with a few /api/ routes standing in for the API blueprint to come."""
    app = make_app(**config)
    app.register_blueprint(api_bp)
    return app


def test_only_login_and_static_are_public() -> None:
    assert PUBLIC_ENDPOINTS == ALLOWED_PUBLIC


@pytest.mark.parametrize("with_api", [False, True], ids=["app", "app+api-probe"])
def test_every_route_refuses_anonymous_requests(make_app: Callable[..., Flask],
                                                with_api: bool) -> None:
    app = probe_app(make_app) if with_api else make_app()
    client = app.test_client()
    checked = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint in ALLOWED_PUBLIC:
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            url = url_for_rule(app, rule, method)
            response = client.open(url, method=method)
            what = f"{method} {url} ({rule.endpoint})"
            if rule.rule.startswith("/api/") or rule.endpoint in MACHINE_ENDPOINTS:
                assert response.status_code == 401, what
                assert response.is_json and "error" in response.get_json(), what
            else:
                assert response.status_code == 302, what
                assert response.headers["Location"].startswith("/auth/login"), what
            checked += 1
    assert checked >= 10


def test_anonymous_api_requests_get_401_json_not_a_redirect(make_app: Callable[..., Flask]) -> None:
    client = probe_app(make_app).test_client()
    response = client.get("/api/v1/probe/whoami")
    assert response.status_code == 401
    assert response.get_json()["error"].startswith("authentication required")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.fixture
def token_of(app: Flask) -> Callable[[Account], str]:
    """Give an account a fresh API token and return it."""

    def make(account: Account) -> str:
        with app.app_context():
            user = db.session.get(User, account.id)
            token = user.new_api_token(app.config["CLOCK"]())
            db.session.commit()
            return token

    return make


def bearer(token: str) -> dict[str, dict[str, str]]:
    return {"headers": {"Authorization": f"Bearer {token}"}}


def test_a_bearer_token_authenticates_as_its_user_without_a_session(
        make_app: Callable[..., Flask], viewer_user: Account, token_of: Callable) -> None:
    client = probe_app(make_app).test_client()
    response = client.get("/api/v1/probe/whoami", **bearer(token_of(viewer_user)))
    assert response.status_code == 200
    assert response.get_json() == {"user": "victor", "via": "token"}
    assert "Set-Cookie" not in response.headers


@pytest.mark.parametrize("header", ["Bearer nvr_wrong", "Bearer ", "Basic dmljdG9yOng=", "nvr_x"])
def test_a_bad_authorization_header_gets_401(make_app: Callable[..., Flask], viewer_user: Account,
                                             token_of: Callable, header: str) -> None:
    token_of(viewer_user)
    client = probe_app(make_app).test_client()
    response = client.get("/api/v1/probe/whoami", headers={"Authorization": header})
    assert response.status_code == 401


def test_revoked_and_disabled_users_tokens_stop_working(make_app: Callable[..., Flask], app: Flask,
                                                        viewer_user: Account, admin_user: Account,
                                                        token_of: Callable) -> None:
    client = probe_app(make_app).test_client()
    viewer_token, admin_token = token_of(viewer_user), token_of(admin_user)
    with app.app_context():
        db.session.get(User, viewer_user.id).revoke_api_token()
        db.session.get(User, admin_user.id).active = False
        db.session.commit()
    assert client.get("/api/v1/probe/whoami", **bearer(viewer_token)).status_code == 401
    assert client.get("/api/v1/probe/whoami", **bearer(admin_token)).status_code == 401


def test_only_the_token_hash_is_stored(app: Flask, viewer_user: Account,
                                       token_of: Callable) -> None:
    token = token_of(viewer_user)
    with app.app_context():
        stored = db.session.get(User, viewer_user.id).api_token_hash
    assert token.startswith("nvr_") and len(token) > 40
    assert stored and token not in stored and len(stored) == 64


def test_bearer_posts_need_no_csrf_token(make_app: Callable[..., Flask], viewer_user: Account,
                                         token_of: Callable) -> None:
    client = probe_app(make_app, WTF_CSRF_ENABLED=True).test_client()
    response = client.post("/api/v1/probe/echo", **bearer(token_of(viewer_user)))
    assert response.status_code == 200


def test_session_posts_to_the_api_need_the_x_csrftoken_header(
        make_app: Callable[..., Flask], viewer_user: Account) -> None:
    client = probe_app(make_app, WTF_CSRF_ENABLED=True).test_client()
    AuthActions(client).login(viewer_user)
    refused = client.post("/api/v1/probe/echo")
    assert refused.status_code == 400
    assert "CSRF" in refused.get_json()["error"]
    token = csrf_token_of(client.get("/"))
    accepted = client.post("/api/v1/probe/echo", headers={"X-CSRFToken": token})
    assert accepted.status_code == 200
    assert accepted.get_json()["user"] == "victor"


def test_an_authorization_header_overrides_the_session(make_app: Callable[..., Flask],
                                                       admin_user: Account) -> None:
    client = probe_app(make_app).test_client()
    AuthActions(client).login(admin_user)
    assert client.get("/api/v1/probe/whoami").status_code == 200
    response = client.get("/api/v1/probe/whoami", headers={"Authorization": "Bearer nvr_forged"})
    assert response.status_code == 401


def test_viewers_get_403_json_on_admin_api_calls(make_app: Callable[..., Flask],
                                                 viewer_user: Account,
                                                 admin_user: Account, token_of: Callable) -> None:
    client = probe_app(make_app).test_client()
    for method in ("GET", "POST"):
        response = client.open("/api/v1/probe/admin-only", method=method,
                               **bearer(token_of(viewer_user)))
        assert response.status_code == 403
        assert response.get_json() == {"error": "This needs an admin account."}
    assert client.get("/api/v1/probe/admin-only", **bearer(token_of(admin_user))).status_code == 200
