"""The recordings pages."""

from flask import Blueprint

bp = Blueprint("recordings", __name__, url_prefix="/recordings")

from . import routes  # noqa: E402,F401  (registers the views on bp)
