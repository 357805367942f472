"""The home page: a dashboard of the cameras in the catalog."""

from flask import Blueprint

bp = Blueprint("main", __name__)

from . import routes  # noqa: E402,F401  (registers the views on bp)
