"""Error handlers for the whole app: an HTML page, or {"error": ...} JSON under /api/."""

from __future__ import annotations

import logging

from urllib.parse import urlsplit

import flask
from flask import render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError, default_exceptions

from ..extensions import db
from ..security import api_error, is_api_request
from . import bp

logger = logging.getLogger(__name__)


def _render(error: HTTPException) -> flask.Response:
    # Start from werkzeug's own response to keep its headers (Allow on 405, Retry-After on 429).
    response = error.get_response()
    code = error.code or 500
    if is_api_request():
        body = api_error(code, error.description or error.name)
    else:
        body = flask.make_response(render_template("errors/error.html", error=error, code=code))
    response.set_data(body.get_data())
    response.content_type = body.content_type
    response.status_code = code
    return response


@bp.app_errorhandler(HTTPException)
def http_error(error: HTTPException) -> flask.Response:
    """Answer 400/401/403/404/405/413/429 and other HTTP errors."""
    return _render(error)


@bp.app_errorhandler(InternalServerError)
def internal_error(error: InternalServerError) -> flask.Response:
    """Answer a 500: roll the session back so the next request starts clean."""
    db.session.rollback()
    return _render(InternalServerError())


def is_browser_navigation() -> bool:
    """Tell whether a person's browser is loading this URL as a page (a link, a form, the
    address bar), not a script or a client fetching JSON."""
    mode = request.headers.get("Sec-Fetch-Mode")
    if mode is not None:  # every current browser says so
        return mode == "navigate"
    # older browsers: a page load prefers HTML and carries no API token
    return "Authorization" not in request.headers and \
        request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"


@bp.after_app_request
def api_errors_as_pages(response: flask.Response) -> flask.Response:
    """Show an API error that a browser navigated to (an export link, a download) as a page.

    The API answers errors as ``{"error": ...}``; a person who followed a link into it would
    otherwise be left on a raw JSON page with no way back.
    """
    if response.status_code < 400 or not is_api_request() or not response.is_json or \
            not is_browser_navigation():
        return response
    payload = response.get_json(silent=True)
    message = payload.get("error") if isinstance(payload, dict) else None
    error = default_exceptions.get(response.status_code, HTTPException)(
        description=str(message or ""))
    back = request.referrer if _same_site(request.referrer) else None
    page = render_template("errors/error.html", error=error, code=response.status_code,
                           back=back)
    response.set_data(page)
    response.content_type = "text/html; charset=utf-8"
    return response


def _same_site(url: str | None) -> bool:
    return bool(url) and urlsplit(url).netloc == request.host
