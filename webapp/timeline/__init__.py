"""The timeline: every camera on one zoomable time axis, and a grid of players in step."""

from flask import Blueprint

bp = Blueprint("timeline", __name__, url_prefix="/timeline")

from . import routes  # noqa: E402,F401  (registers the views on bp)
