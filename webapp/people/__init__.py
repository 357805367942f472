"""The People page: who the cameras know, their enrolled faces, and the recent unknown faces."""

from flask import Blueprint

bp = Blueprint("people", __name__, url_prefix="/people")

from . import routes  # noqa: E402,F401  (registers the views on bp)
