"""The admin page of a camera's motion settings: detection on/off, sensitivity, the mask zones
drawn on its latest picture, its motion alerts and armed hours; and its two face switches
(recognition on, emails for unknown faces) (admins only)."""

from __future__ import annotations

import json
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select

from nvrlib.catalog.models import Camera, Segment

from .. import faces_settings
from .. import motion_service as motion
from ..catalog_queries import STATUS_OK
from ..extensions import db
from ..security import admin_required, now
from . import bp
from .forms import ActionForm


def _latest_picture(camera: str) -> str | None:
    """Return the URL of the thumbnail of the camera's newest recording (None: none yet)."""
    segment_id = db.session.scalar(
        select(Segment.id).join(Camera, Camera.id == Segment.camera_id)
        .where(Camera.name == camera, Segment.status == STATUS_OK)
        .order_by(Segment.start_time.desc()).limit(1))
    return url_for("recordings.thumbnail", segment_id=segment_id) if segment_id else None


def _form_changes(form: Any) -> dict[str, Any]:
    """The settings a submitted page asks for, as the API takes them (checked by the service)."""
    sensitivity = form.get("sensitivity", "").strip()
    return {"enabled": form.get("enabled") == "on", "alerts": form.get("alerts") == "on",
            "sensitivity": int(sensitivity) if sensitivity.isdigit() else sensitivity,
            "mask": motion.parse_mask(form.get("mask", "[]"))}


@bp.route("/cameras/<camera>/motion", methods=["GET", "POST"])
@admin_required
def camera_motion(camera: str) -> ResponseReturnValue:
    """Show and change a camera's motion settings; the mask is drawn on a canvas (motion.js)."""
    try:
        settings = motion.get_settings(camera)
    except motion.UnknownCamera as exc:
        abort(404, str(exc))
    hours = motion.get_schedule().camera_hours.get(camera, "")
    error, error_field, status = None, None, 200
    if request.method == "POST":
        if not ActionForm().validate_on_submit():
            abort(400, "The form was incomplete. Please try again.")
        try:
            changes = _form_changes(request.form)
            hours = request.form.get("armed_hours", "")
            motion.check_schedule({"camera_hours": {camera: hours}})  # before saving anything
            motion.save_settings(camera, changes, current_user.username)
            motion.save_schedule({"camera_hours": {camera: hours}}, current_user.username)
            faces_settings.save_camera_faces(camera, _face_switches(request.form),
                                             current_user.username)
        except motion.MotionSettingsError as exc:
            db.session.rollback()
            error, error_field, status = str(exc), exc.field, 400
        else:
            flash(f"Saved the motion settings of {camera}; its detector reloads them.", "success")
            return redirect(url_for("admin.camera_motion", camera=camera))
    shown = _shown(settings, hours, request.form if error else None)
    faces = faces_settings.camera_faces(camera)
    face_switches = (_face_switches(request.form) if error else
                     {"enabled": faces.enabled, "unknown_alerts": faces.unknown_alerts})
    return render_template("admin/motion.html", camera=camera, shown=shown, faces=faces,
                           face_switches=face_switches,
                           faces_view={"faces_active": faces.active(now())},
                           picture=_latest_picture(camera), error=error,
                           error_field=error_field, updated_at=settings.updated_at), status


def _face_switches(form: Any) -> dict[str, bool]:
    """The face switches a submitted page asks for (as the API takes them)."""
    return {"enabled": form.get("faces_enabled") == "on",
            "unknown_alerts": form.get("faces_unknown_alerts") == "on"}


def _shown(settings: motion.MotionSettings, hours: str, posted: Any) -> dict[str, Any]:
    """What the page's fields show: the stored settings, or what was sent when it was refused
    (nothing typed or drawn is lost)."""
    if posted is None:
        return {"enabled": settings.enabled, "alerts": settings.alerts,
                "sensitivity": settings.sensitivity, "hours": hours,
                "mask": json.dumps(settings.mask)}
    return {"enabled": posted.get("enabled") == "on", "alerts": posted.get("alerts") == "on",
            "sensitivity": posted.get("sensitivity", ""), "hours": posted.get("armed_hours", ""),
            "mask": posted.get("mask", "[]")}
