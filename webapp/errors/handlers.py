"""Error handlers for the whole app: an HTML page, or {"error": ...} JSON under /api/."""

from __future__ import annotations

import logging

import flask
from flask import render_template
from werkzeug.exceptions import HTTPException, InternalServerError

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
