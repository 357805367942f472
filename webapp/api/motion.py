"""API endpoints for motion (docs/api.md, "Motion"): snapshots for every user; each camera's
motion settings and the motion-alert schedule (armed hours, away) for admins."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from flask import request, send_file
from flask.typing import ResponseReturnValue
from flask_login import current_user

from .. import hub_storage
from .. import motion_service as motion
from ..security import admin_required, api_error
from . import bp

SNAPSHOT_CACHE = "private, max-age=86400"  # a snapshot never changes once stored


def _json_object() -> Mapping[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise motion.MotionSettingsError("body", "expected a JSON object "
                                                 "(Content-Type: application/json)")
    return data


def stored_jpeg(find: Callable[[], Path | None], missing: str, cache: str) -> ResponseReturnValue:
    """Serve a JPEG kept in a hub's storage (a snapshot, a face crop): 404 ``missing`` when
    ``find`` has none, 403 for a path that leaves the storage, 503 when it is unreachable."""
    try:
        path = find()
    except hub_storage.OutsideStorage as exc:
        return api_error(403, str(exc))
    except hub_storage.StorageUnreachable as exc:
        return api_error(503, str(exc))
    if path is None:
        return api_error(404, missing)
    response = send_file(path, mimetype="image/jpeg", conditional=True, etag=True)
    response.headers["Cache-Control"] = cache
    return response


@bp.get("/events/motion/<int:event_id>/snapshot.jpg")
def motion_snapshot(event_id: int) -> ResponseReturnValue:
    """Serve the JPEG a detector took at a motion event's peak (404 when there is none)."""
    return stored_jpeg(lambda: motion.snapshot_file(event_id),
                       f"motion event {event_id} has no snapshot on disk", SNAPSHOT_CACHE)


@bp.get("/cameras/<camera>/motion")
@admin_required
def camera_motion(camera: str) -> ResponseReturnValue:
    """Return a camera's motion settings: enabled, sensitivity, mask zones, alerts."""
    return motion.get_settings(camera).to_json()


@bp.put("/cameras/<camera>/motion")
@admin_required
def set_camera_motion(camera: str) -> ResponseReturnValue:
    """Change any of a camera's motion settings; its detector reloads them."""
    return motion.save_settings(camera, _json_object(), current_user.username).to_json()


@bp.get("/alerts/motion")
@admin_required
def motion_alert_schedule() -> ResponseReturnValue:
    """Return when motion alerts are armed: the away switch, armed hours and time zone."""
    return motion.get_schedule().to_json()


@bp.put("/alerts/motion")
@admin_required
def set_motion_alert_schedule() -> ResponseReturnValue:
    """Change the away switch, the armed hours (for all or per camera) or the time zone."""
    return motion.save_schedule(_json_object(), current_user.username).to_json()
