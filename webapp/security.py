"""Who may see what: the login guard on every route, API tokens, CSRF, cookies and headers.

Blueprints use `admin_required`, `current_user_is_admin()`, `api_error()` and `is_api_request()`;
`init_app` wires the rest into the app (called by `create_app`).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import flask
from flask import (
    Flask, abort, current_app, flash, g, has_request_context, jsonify, redirect, request, session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_user, logout_user, user_loaded_from_cookie
from sqlalchemy import select

from . import login_sessions, stream_links
from .extensions import csrf, db, login_manager
from .models import User, hash_api_token
from .proxy import ForwardedFromTrustedProxies, TrustedProxies, proxies_setting

logger = logging.getLogger(__name__)

# The only endpoints an anonymous visitor reaches; tests/webapp/test_guard.py holds the same list.
# monitoring.health is a load balancer's probe: it answers counts only, never names or paths.
# auth.login_face is face sign-in's second step: it serves only a browser whose signed session
# holds a login that passed its password moments ago (webapp.auth.face_signin).
PUBLIC_ENDPOINTS = frozenset({"auth.login", "auth.login_face", "static", "vendor_static",
                              "favicon", "monitoring.health"})
# Endpoints an anonymous visitor reaches only when the app's config key is true (e.g. a
# Prometheus server on a trusted network scraping without a token: [webapp] public_metrics).
OPTIONALLY_PUBLIC = {"monitoring.metrics": "PUBLIC_METRICS"}
# Endpoints for machines: without credentials they answer 401, never the login page.
MACHINE_ENDPOINTS = frozenset({"monitoring.metrics"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
API_PREFIX = "/api/"
AUTH_AT = "auth_at"  # session key: when this session was authenticated (UNIX seconds)
_FLASK_LOGIN_KEYS = ("_user_id", "_fresh", "_id")

F = TypeVar("F", bound=Callable[..., Any])


def now() -> dt.datetime:
    """Return the app's current time (config CLOCK, injectable in tests) as aware UTC."""
    return current_app.config["CLOCK"]()


def is_api_request() -> bool:
    """Tell whether the request is for the JSON API (answers in JSON, never redirects)."""
    return request.path == API_PREFIX.rstrip("/") or request.path.startswith(API_PREFIX)


def api_error(status: int, message: str) -> flask.Response:
    """Return a JSON error response ``{"error": message}`` with ``status``."""
    response = jsonify(error=message)
    response.status_code = status
    return response


def current_user_is_admin() -> bool:
    """Tell whether the logged-in user is an admin."""
    return bool(current_user.is_authenticated and getattr(current_user, "is_admin", False))


def admin_required(view: F) -> F:
    """Let only admins through: viewers get 403 (JSON under /api/), anonymous users 401/login."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            return unauthorized()
        if not current_user_is_admin():
            abort(403, "This needs an admin account.")
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def body_limit(max_bytes: int) -> Callable[[F], F]:
    """Let a view take request bodies up to ``max_bytes`` (others: MAX_CONTENT_LENGTH)."""

    def mark(view: F) -> F:
        view.max_body_bytes = max_bytes  # type: ignore[attr-defined]
        return view

    return mark


def _apply_body_limit(endpoint: str) -> None:
    # Before the CSRF check, which parses the body: a photo upload's limit must hold by then.
    limit = getattr(current_app.view_functions.get(endpoint), "max_body_bytes", None)
    if limit is not None:
        request.max_content_length = limit


def safe_next(target: str | None) -> str | None:
    """Return ``target`` if it is a relative path on this site, else None (no open redirects)."""
    if not target or len(target) > 2048 or not target.startswith("/") or target.startswith("//"):
        return None
    # Browsers read "\" as "/" and drop tabs and newlines, so "/\\evil.com" would leave the site.
    if any(ch == "\\" or ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def client_address() -> str:
    """Return the client's address (from a trusted reverse proxy, the one it forwarded)."""
    return request.remote_addr or "unknown"


def bearer_token() -> str | None:
    """Return the token of an ``Authorization: Bearer`` header, if the request has one."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def start_session(user: User, remember: bool) -> None:
    """Log ``user`` in on a fresh server-side session (see `webapp.login_sessions`)."""
    session.clear()  # nothing from before the login survives it
    user.login_token = login_sessions.create(user, remember, client_address())
    login_user(user, remember=remember, duration=current_app.config["REMEMBER_COOKIE_DURATION"])
    session.permanent = True
    session[AUTH_AT] = now().timestamp()


def end_session() -> None:
    """Log the current user out: revoke the session on the server, then clear the cookies."""
    login_sessions.revoke(getattr(current_user, "login_token", None))
    logout_user()  # also clears the remember-me cookie
    session.pop(AUTH_AT, None)


def _load_user(login_token: str) -> User | None:
    # A request that carries an Authorization header is authenticated by that header alone.
    if "Authorization" in request.headers:
        return None
    return login_sessions.resolve(login_token)


def _load_user_from_request(_request: flask.Request) -> User | None:
    token = bearer_token()
    if token is None:
        # A player that cannot send a header (VLC, a TV) brings a stream link's ?st= instead.
        return stream_links.user_of_request()
    user = db.session.scalar(select(User).where(User.api_token_hash == hash_api_token(token)))
    if user is None or not user.active:
        logger.warning("rejected an API token from %s", client_address())
        return None
    g.auth_method = "token"
    return user


def _on_login_from_cookie(_sender: Flask, user: User, **_extra: Any) -> None:
    # The remember-me cookie starts a new session; it gets its own full lifetime.
    session.permanent = True
    session[AUTH_AT] = now().timestamp()


def unauthorized() -> ResponseReturnValue:
    """Answer an anonymous request: 401 JSON under /api/ and /metrics, else the login page."""
    if is_api_request() or request.endpoint in MACHINE_ENDPOINTS:
        response = api_error(401, g.get("stream_link_problem")
                             or "authentication required: log in, or send "
                                "'Authorization: Bearer <token>'")
        response.headers["WWW-Authenticate"] = 'Bearer realm="nvr"'
        return response
    if g.get("session_expired"):
        flash("Your session has expired. Please log in again.", "info")
    target = None
    if request.method == "GET" and request.path != "/":
        # a stream link's token never rides along into the login page's URL
        keep = request.query_string and stream_links.PARAM not in request.args
        target = request.full_path if keep else request.path
    return redirect(url_for("auth.login", next=target))


def _expire_stale_session() -> None:
    if "_user_id" not in session:
        return
    auth_at = session.get(AUTH_AT)
    age = now().timestamp() - auth_at if isinstance(auth_at, (int, float)) else None
    lifetime = current_app.permanent_session_lifetime.total_seconds()
    if age is not None and -60 <= age <= lifetime:
        return
    for key in (*_FLASK_LOGIN_KEYS, AUTH_AT):
        session.pop(key, None)
    g.session_expired = True


def _public_by_config(endpoint: str) -> bool:
    key = OPTIONALLY_PUBLIC.get(endpoint)
    return key is not None and bool(current_app.config.get(key))


def guard_request() -> ResponseReturnValue | None:
    """Expire old sessions, require a login on every non-public route, then check CSRF."""
    _expire_stale_session()
    endpoint = request.endpoint
    if endpoint is None:  # no such route: let the 404/405 handler answer
        return None
    _apply_body_limit(endpoint)
    if (endpoint not in PUBLIC_ENDPOINTS and not _public_by_config(endpoint)
            and not current_user.is_authenticated):
        return unauthorized()
    # A Bearer token is no ambient credential (a browser never adds it), so it needs no CSRF token.
    if (request.method not in SAFE_METHODS and g.get("auth_method") != "token"
            and current_app.config.get("WTF_CSRF_ENABLED", True)):
        csrf.protect()
    return None


def set_security_headers(response: flask.Response) -> flask.Response:
    """Add the CSP and the other protective headers to every response."""
    headers = response.headers
    headers.setdefault("Content-Security-Policy", current_app.config["CONTENT_SECURITY_POLICY"])
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    hsts_max_age = int(current_app.config.get("HSTS_MAX_AGE") or 0)
    if request.is_secure and hsts_max_age > 0:
        # Only over HTTPS (RFC 6797 7.2): browsers then refuse plain HTTP to this host.
        headers.setdefault("Strict-Transport-Security", f"max-age={hsts_max_age}")
    if request.endpoint not in ("static", "vendor_static", "favicon") and \
            "Cache-Control" not in headers:
        # Pages show who is logged in and what they may see: keep them out of shared caches
        # and the back button after logout.
        headers["Cache-Control"] = "no-store"
    return response


class Response(flask.Response):
    """Flask's response, whose cookies are always Secure when the request came over HTTPS."""

    def set_cookie(self, key: str, *args: Any, **kwargs: Any) -> None:
        """Set a cookie; over HTTPS force its Secure flag (session, remember-me and any other)."""
        if has_request_context() and request.is_secure and len(args) < 6:
            kwargs["secure"] = True
        super().set_cookie(key, *args, **kwargs)


def init_app(app: Flask) -> None:
    """Install the guard, the user loaders, the cookie and header policies on ``app``."""
    app.response_class = Response
    # X-Forwarded-For/-Proto are believed only from the configured proxies' addresses.
    proxies = TrustedProxies(proxies_setting(app.config.get("TRUSTED_PROXIES")))
    app.wsgi_app = ForwardedFromTrustedProxies(  # type: ignore[method-assign]
        app.wsgi_app, proxies)
    login_manager.user_loader(_load_user)
    login_manager.request_loader(_load_user_from_request)
    login_manager.unauthorized_handler(unauthorized)
    user_loaded_from_cookie.connect(_on_login_from_cookie, app)
    app.before_request(guard_request)
    app.after_request(set_security_headers)
