"""Log in and out: the login form, failed-login throttling, logout."""

from flask import Blueprint

bp = Blueprint("auth", __name__, url_prefix="/auth")

from . import routes  # noqa: E402,F401  (registers the views on bp)
