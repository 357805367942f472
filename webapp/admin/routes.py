"""Views of the admin blueprint: the camera control panel (admins only).

Every action fetches the camera first (404 if there is none), then checks that the action
applies to it (400, e.g. disconnecting a pulled camera), then tells the hub and waits briefly
for its answer, which the next page shows as a flash message.
"""

from __future__ import annotations

import logging

from flask import abort, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from nvrlib.names import DEFAULT_HUB

from .. import cameras_service as cameras
from .. import hubs
from ..security import admin_required
from . import bp
from .forms import ActionForm, EditPullCameraForm, PullCameraForm

logger = logging.getLogger(__name__)

DONE = {"restart": "Restarted", "disconnect": "Disconnected", "enable": "Enabled",
        "disable": "Disabled", "approve": "Approved", "reject": "Rejected", "reload": "Saved"}


@bp.context_processor
def _formatters() -> dict[str, object]:
    return {"human_bitrate": cameras.human_bitrate, "human_duration": cameras.human_duration}


def _back() -> ResponseReturnValue:
    return redirect(url_for("admin.index"))


def _require_post_form() -> None:
    # The guard checked the CSRF token already; this also rejects a malformed form.
    if not ActionForm().validate_on_submit():
        abort(400, "The form was incomplete. Please try again.")


def _editable(name: str) -> cameras.CameraView:
    try:
        view = cameras.get_camera(name)
    except cameras.UnknownCamera as exc:
        abort(404, str(exc))
    if not view.editable:
        abort(400, f"Camera {name} was not added here as a pull camera; change it in the hub's "
                   f"config file or on its edge.")
    return view


def _flash(outcome: cameras.Outcome, done: str) -> None:
    """Show what the hub answered, or that it has not answered yet."""
    what = f"{done} {outcome.camera}"
    if outcome.result is None:
        flash(f"{what}: sent to the hub, which has not answered yet (is it running?). "
              f"It acts on commands up to 5 minutes old.", "warning")
    elif outcome.ok:
        flash(f"{what}. The hub says: {outcome.result}", "success")
    else:
        flash(f"{what}? The hub says: {outcome.result}", "warning")


@bp.route("/")
@admin_required
def index() -> ResponseReturnValue:
    """List every camera with its state, uptime, last segment, rates and edge address."""
    listed = cameras.list_cameras()
    pending = [c.name for c in listed if c.approval == "pending"]
    # with one hub the page is as it always was; with several, each camera's hub
    return render_template("admin/index.html", cameras=listed, pending=pending,
                           several_hubs=hubs.several_hubs())


@bp.route("/cameras/<camera>/<action>", methods=["POST"])
@admin_required
def control(camera: str, action: str) -> ResponseReturnValue:
    """Restart, disconnect, enable, disable, approve or reject a camera."""
    _require_post_form()
    try:
        outcome = cameras.control(camera, action, current_user.username)
    except cameras.CameraError as exc:
        abort(exc.status, str(exc))
    _flash(outcome, DONE[action])
    return _back()


@bp.route("/cameras/new", methods=["GET", "POST"])
@admin_required
def add_camera() -> ResponseReturnValue:
    """Add an RTSP camera for the hub to pull."""
    form = PullCameraForm()
    hub_ids = hubs.hub_ids()
    form.hub.choices = [(hub_id, hub_id) for hub_id in hub_ids]
    if not form.is_submitted() and DEFAULT_HUB in hub_ids:
        form.hub.data = DEFAULT_HUB  # preselected; the API, by contrast, must name one
    if form.validate_on_submit():
        try:
            outcome = cameras.add_pull_camera(form.name.data or "", form.location.data or "",
                                              form.url.data or "", current_user.username,
                                              hub=form.hub.data or None)
        except cameras.NameTaken as exc:
            form.name.errors = [*form.name.errors, str(exc)]
        else:
            _flash(outcome, "Added")
            return _back()
    status = 400 if form.errors else 200
    return render_template("admin/camera_form.html", form=form, camera=None,
                           several_hubs=len(hub_ids) > 1), status


@bp.route("/cameras/<camera>/edit", methods=["GET", "POST"])
@admin_required
def edit_camera(camera: str) -> ResponseReturnValue:
    """Change a pulled camera's location or URL (its password shows as ***, never itself)."""
    view = _editable(camera)
    form = EditPullCameraForm(data={"location": view.location,
                                    "url": cameras.url_for_edit(camera)})
    if form.validate_on_submit():
        try:
            outcome = cameras.edit_pull_camera(camera, form.location.data or "",
                                               form.url.data or None, current_user.username)
        except cameras.InvalidRequest as exc:  # *** left where no password is stored
            form.url.errors = [*form.url.errors, str(exc)]
        else:
            _flash(outcome, "Saved")
            return _back()
    status = 400 if form.errors else 200
    return render_template("admin/camera_form.html", form=form, camera=view), status


@bp.route("/cameras/<camera>/remove", methods=["POST"])
@admin_required
def remove_camera(camera: str) -> ResponseReturnValue:
    """Stop pulling a camera added here; its footage stays."""
    _require_post_form()
    _editable(camera)
    _flash(cameras.remove_pull_camera(camera, current_user.username), "Removed")
    return _back()
