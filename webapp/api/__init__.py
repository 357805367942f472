"""The versioned JSON API (docs/api.md): session or Bearer-token authenticated."""

import flask
from flask import Blueprint
from werkzeug.routing import BaseConverter

from ..security import api_error
from ..service_errors import ServiceError


class ControlActionConverter(BaseConverter):
    """A control action of /cameras/<camera>/<action>: any word but ``motion`` and ``faces``, the
    paths of the camera's settings (so that POST or OPTIONS there never reaches the control view)."""

    regex = r"(?!(?:motion|faces)$)[^/]+"


bp = Blueprint("api", __name__, url_prefix="/api/v1")
# before the views below add their rules: a rule's converter must be known when it is added
bp.record_once(lambda state: state.app.url_map.converters.setdefault(
    "control_action", ControlActionConverter))


@bp.errorhandler(ServiceError)
def service_error(exc: ServiceError) -> flask.Response:
    """Answer a request a service refused: ``{"error": message}`` with the error's status."""
    return api_error(exc.status, str(exc))


from . import bulk_exports, cameras, events, locks, motion, openapi, people, recordings, timeline  # noqa: E402,F401,E501  (register the views on bp)
