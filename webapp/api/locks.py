"""API endpoints for recording locks (docs/api.md, "Locks"): footage retention must keep.

Any user may list locks and lock one camera with a reason; locks of every camera, and viewer
locks beyond the caps (``GET /locks/limits``), need an admin (403 naming which). A lock is
deleted by an admin or by the user who made it. The rules are `webapp.protect.locks`', the
same as the Locks page's.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from ..protect import limits, locks
from ..recordings.params import (
    MAX_OFFSET, ParamError, int_param, optional_time, parse_time, parse_tz,
)
from ..ids import is_id
from ..security import api_error, current_user_is_admin
from . import bp

LIST_PARAMS = frozenset({"camera", "start", "end", "tz", "limit", "offset"})
RANGE_FIELDS = frozenset({"camera", "start", "end", "note", "tz"})
RECORDING_FIELDS = frozenset({"recording", "note"})
DEFAULT_LIMIT = 100
MAX_LIMIT = 500


@bp.get("/locks")
def list_locks() -> ResponseReturnValue:
    """List locks, latest range first; ``camera`` and ``start``/``end`` narrow the list."""
    args = request.args
    unknown = sorted(set(args) - LIST_PARAMS)
    if unknown:
        raise ParamError(unknown[0], "unknown parameter")
    tz = parse_tz(args.get("tz"))
    start, end = optional_time(args, "start", tz), optional_time(args, "end", tz)
    limit = int_param(args, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = int_param(args, "offset", 0, 0, MAX_OFFSET)
    camera = args.get("camera", "").strip() or None
    rows, has_next = locks.list_locks(camera, start, end, limit, offset)
    response = jsonify([row.to_json() for row in rows])
    if has_next:
        next_args = {**args.to_dict(), "offset": str(offset + limit)}
        response.headers["Link"] = f'<{url_for("api.list_locks", **next_args)}>; rel="next"'
    return response


@bp.get("/locks/limits")
def lock_limits() -> ResponseReturnValue:
    """Return the viewer caps and what the caller's own viewer locks take of them."""
    usage = limits.usage_of(current_user.username)
    return jsonify({**limits.current_limits().to_json(), "used_locks": usage.count,
                    "used_hours": round(usage.hours, 3), "capped": not current_user_is_admin()})


@bp.get("/locks/<int:lock_id>")
def get_lock(lock_id: int) -> ResponseReturnValue:
    """Return one lock."""
    return jsonify(locks.get_lock(lock_id).to_json())


def _string(data: dict[str, Any], key: str, required: bool = True) -> str:
    value = data.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise ParamError(key, "must be a string" + ("" if required else " or absent"))
    return value


def _create(data: dict[str, Any]) -> locks.LockView:
    """Lock one recording ({"recording": id}) or a range ({"camera", "start", "end"})."""
    note = _string(data, "note", required=False)  # locks.check_note: a reason is required
    user, admin = current_user.username, current_user_is_admin()
    if "recording" in data:
        unknown = sorted(set(data) - RECORDING_FIELDS)
        if unknown:
            raise ParamError(unknown[0], "not allowed with recording")
        recording = data["recording"]
        if not is_id(recording):
            raise ParamError("recording", "must be a recording's id (a whole number)")
        return locks.lock_recording(recording, note, user, admin)
    unknown = sorted(set(data) - RANGE_FIELDS)
    if unknown:
        raise ParamError(unknown[0], "unknown field")
    if "camera" not in data:
        raise ParamError("camera", "required: a camera's name, or null for every camera")
    camera = data["camera"]
    if camera is not None and not isinstance(camera, str):
        raise ParamError("camera", "must be a camera's name, or null for every camera")
    tz = parse_tz(_string(data, "tz", required=False))
    start = parse_time(_string(data, "start"), "start", tz)
    end = parse_time(_string(data, "end"), "end", tz)
    return locks.create_lock(camera, start, end, note, user, admin)


@bp.post("/locks")
def create_lock() -> ResponseReturnValue:
    """Create a lock: {"camera": name or null, "start", "end", "note"} or {"recording", "note"}."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return api_error(400, "expected a JSON object (Content-Type: application/json)")
    view = _create(data)
    response = jsonify(view.to_json())
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_lock", lock_id=view.id)
    return response


@bp.delete("/locks/<int:lock_id>")
def delete_lock(lock_id: int) -> ResponseReturnValue:
    """Delete a lock (admins, or the user who made it): 204, and its footage may go again."""
    locks.remove_lock(lock_id, current_user.username, current_user_is_admin())
    return "", 204
