"""The versioned JSON API (docs/api.md): session or Bearer-token authenticated."""

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")

from . import bulk_exports, cameras, events, locks, openapi, recordings, timeline  # noqa: E402,F401  (register the views on bp)
