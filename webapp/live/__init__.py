"""The live pages."""

from flask import Blueprint

bp = Blueprint("live", __name__, url_prefix="/live")

from . import routes  # noqa: E402,F401  (registers the views on bp)
