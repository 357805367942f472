"""User management for admins: create, disable and enable, roles, passwords, API tokens, and
turning a user's face sign-in off (recovery: never on, which takes the user's own face)."""

from flask import Blueprint

bp = Blueprint("users", __name__, url_prefix="/users")

from . import routes  # noqa: E402,F401  (registers the views on bp)
