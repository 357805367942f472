"""The signed-in user's own settings: face sign-in (/account/face)."""

from flask import Blueprint

bp = Blueprint("account", __name__, url_prefix="/account")

from . import routes  # noqa: E402,F401  (registers the views on bp)
