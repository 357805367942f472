"""Monitoring: ``GET /api/v1/health`` (load balancers), ``GET /metrics``, and the Health page.

Health needs no login and tells counts only (no camera names, paths or URLs). Metrics need a
session or an API token unless ``[webapp] public_metrics = true`` (`webapp.security`).
"""

from flask import Blueprint

bp = Blueprint("monitoring", __name__)

from . import routes  # noqa: E402,F401  (registers the views on bp)
