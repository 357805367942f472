"""Log in and out: the login form, failed-login throttling, face sign-in, logout."""

from flask import Blueprint

bp = Blueprint("auth", __name__, url_prefix="/auth")

from . import face_routes, routes  # noqa: E402,F401  (register the views on bp)
