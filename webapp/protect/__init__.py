"""Recording locks: protect footage from retention (the Locks page and the Protect buttons).

The rules (who may lock and remove, what a valid range is) live in `locks`, shared by these
pages, the recordings pages' indicators and the JSON API (`webapp/api/locks.py`).
"""

from flask import Blueprint

bp = Blueprint("protect", __name__, url_prefix="/protect")

from . import routes  # noqa: E402,F401  (registers the views on bp)
