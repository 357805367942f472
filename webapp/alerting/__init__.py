"""Alert settings for admins: the alert addresses, muting a camera's alerts, a test email."""

from flask import Blueprint

bp = Blueprint("alerting", __name__, url_prefix="/admin/alerts")

from . import routes  # noqa: E402,F401  (registers the views on bp)
