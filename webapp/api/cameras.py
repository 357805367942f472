"""API endpoints for cameras: status for everyone, control for admins (docs/api.md, "Cameras").

Control calls answer with the hub's result when it comes within CAMERA_COMMAND_TIMEOUT
(about 3 s): 200 and ``"done": true``; else 202 and ``"done": false``, and
``GET /api/v1/commands/<id>`` tells the outcome later.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from flask.typing import ResponseReturnValue
from flask_login import current_user

from .. import cameras_service as cameras
from ..security import admin_required, current_user_is_admin
from . import bp


def _outcome(outcome: cameras.Outcome, created: bool = False) -> ResponseReturnValue:
    body = outcome.to_json()
    if created:
        body["camera"] = cameras.get_camera(outcome.camera).to_json(admin=True)
        return jsonify(body), 201
    return jsonify(body), 200 if outcome.result is not None else 202


def _json_body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise cameras.InvalidRequest("expected a JSON object (Content-Type: application/json)")
    return data


def _text(data: dict[str, Any], key: str, required: bool = False) -> str | None:
    value = data.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise cameras.InvalidRequest(f"{key!r} must be a string")
    return value


@bp.route("/cameras")
def list_cameras() -> ResponseReturnValue:
    """List every camera with its live status (admins also see edge addresses)."""
    admin = current_user_is_admin()
    return jsonify([camera.to_json(admin=admin) for camera in cameras.list_cameras()])


@bp.route("/cameras/<camera>")
def get_camera(camera: str) -> ResponseReturnValue:
    """Return one camera with its live status."""
    return jsonify(cameras.get_camera(camera).to_json(admin=current_user_is_admin()))


@bp.route("/cameras/<camera>/<control_action:action>", methods=["POST"])
@admin_required
def control(camera: str, action: str) -> ResponseReturnValue:
    """Restart, disconnect, enable, disable, approve or reject a camera (admins)."""
    return _outcome(cameras.control(camera, action, current_user.username))


@bp.route("/cameras", methods=["POST"])
@admin_required
def add_pull_camera() -> ResponseReturnValue:
    """Add an RTSP camera for a hub to pull: {"name", "location", "url", "hub"} (admins)."""
    data = _json_body()
    outcome = cameras.add_pull_camera(_text(data, "name", True) or "",
                                      _text(data, "location") or "",
                                      _text(data, "url", True) or "", current_user.username,
                                      hub=_text(data, "hub"))
    return _outcome(outcome, created=True)


@bp.route("/cameras/<camera>", methods=["PATCH"])
@admin_required
def edit_pull_camera(camera: str) -> ResponseReturnValue:
    """Change a pull camera's "location" and/or "url" (admins)."""
    data = _json_body()
    unknown = set(data) - {"location", "url"}
    if unknown:
        raise cameras.InvalidRequest(f"unknown field {sorted(unknown)[0]!r}; "
                                     f"only location and url can change")
    return _outcome(cameras.edit_pull_camera(camera, _text(data, "location"),
                                             _text(data, "url"), current_user.username))


@bp.route("/cameras/<camera>", methods=["DELETE"])
@admin_required
def remove_pull_camera(camera: str) -> ResponseReturnValue:
    """Stop pulling a camera added here and forget its URL (its footage stays) (admins)."""
    return _outcome(cameras.remove_pull_camera(camera, current_user.username))


@bp.route("/commands/<int:command_id>")
@admin_required
def command(command_id: int) -> ResponseReturnValue:
    """Tell the hub's answer to a command sent earlier (null while it is pending)."""
    return jsonify(cameras.get_command(command_id).to_json())
