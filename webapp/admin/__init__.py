"""The admin pages."""

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")

from . import motion_routes, routes, token_routes  # noqa: E402,F401  (registers the views on bp)
