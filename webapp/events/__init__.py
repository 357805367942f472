"""The events page: the alerts the hub raised and the cameras' outages, newest first."""

from flask import Blueprint

bp = Blueprint("events", __name__, url_prefix="/events")

from . import routes  # noqa: E402,F401  (registers the views on bp)
