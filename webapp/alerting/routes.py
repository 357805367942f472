"""Views of the alert settings page (admins only): addresses, mutes and a test email.

Each form POSTs to its own URL; a valid one changes the catalog and redirects back with a
flash message, an invalid one shows the page again with the form's errors and status 400.
"""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from wtforms import SelectChoice

from .. import catalog_queries
from .. import motion_service
from ..events.queries import DELIVERY_STATUSES, STATUS_BADGES
from ..security import admin_required, now
from . import bp, service
from .forms import ButtonForm, MuteForm, RecipientsForm


def _mute_form() -> MuteForm:
    form = MuteForm()
    form.camera.choices = [SelectChoice(name, name) for name in catalog_queries.camera_names()]
    return form


def _page(recipients: RecipientsForm | None = None, mute_form: MuteForm | None = None,
          status: int = 200, motion_error: motion_service.MotionSettingsError | None = None,
          motion_shown: motion_service.MotionAlertSchedule | None = None) -> ResponseReturnValue:
    if recipients is None:
        recipients = RecipientsForm(data={"addresses": ", ".join(service.saved_addresses())})
    context = {
        "email": service.email_status(), "recipients": recipients,
        "saved": service.saved_addresses(), "changed": service.setting_changed_by(),
        "mute_form": mute_form or _mute_form(), "mutes": service.mutes(),
        "test": service.latest_test_alert(), "now": now(),
        "status_badges": STATUS_BADGES, "status_titles": DELIVERY_STATUSES,
        "stale_seconds": int(service.HUB_STALE_AFTER.total_seconds()),
        "motion": motion_shown or motion_service.get_schedule(),
        "motion_cameras": motion_service.cameras_with_alerts(),
        "motion_error": str(motion_error) if motion_error else None,
        "motion_field": motion_error.field if motion_error else None,
    }
    return render_template("alerting/index.html", **context), status


@bp.route("/")
@admin_required
def index() -> ResponseReturnValue:
    """Show whether email is on, the alert addresses, the mutes and the latest test email."""
    return _page()


@bp.route("/recipients", methods=["POST"])
@admin_required
def recipients() -> ResponseReturnValue:
    """Set the alert addresses (an empty list hands them back to the config file)."""
    form = RecipientsForm()
    if not form.validate_on_submit():
        return _page(recipients=form, status=400)
    saved = service.save_addresses(service.parse_addresses(form.addresses.data or ""),
                                   current_user.username)
    if saved:
        flash(f"Alert addresses saved: {', '.join(saved)}.", "success")
    else:
        flash("Alert addresses cleared: the hub uses the addresses of its config file.", "success")
    if service.email_status().environment_overrides:
        flash("ALERT_EMAIL_TO in the hub's environment overrides these addresses.", "warning")
    return redirect(url_for("alerting.index"))


@bp.route("/mute", methods=["POST"])
@admin_required
def mute() -> ResponseReturnValue:
    """Mute a camera's alerts for 1 h, 8 h, 24 h or 7 days."""
    form = _mute_form()
    if not form.validate_on_submit():
        return _page(mute_form=form, status=400)
    camera = form.camera.data or ""
    length = service.MUTE_LENGTHS[form.length.data or ""]
    try:
        until = service.mute(camera, length, current_user.username)
    except service.UnknownCamera as exc:
        abort(404, str(exc))
    assert until is not None
    flash(f"Alerts of {camera} muted until {until:%Y-%m-%d %H:%M} UTC: they are stored and "
          f"shown on the Events page, but not emailed.", "success")
    return redirect(url_for("alerting.index"))


@bp.route("/unmute/<camera>", methods=["POST"])
@admin_required
def unmute(camera: str) -> ResponseReturnValue:
    """Email a camera's alerts again."""
    if not ButtonForm().validate_on_submit():
        abort(400, "The form was incomplete. Please try again.")
    try:
        service.mute(camera, None, current_user.username)
    except service.UnknownCamera as exc:
        abort(404, str(exc))
    flash(f"Alerts of {camera} are emailed again.", "success")
    return redirect(url_for("alerting.index"))


@bp.route("/test", methods=["POST"])
@admin_required
def test_email() -> ResponseReturnValue:
    """Queue a test email for the hub to send to the alert addresses."""
    if not ButtonForm().validate_on_submit():
        abort(400, "The form was incomplete. Please try again.")
    service.request_test_email(current_user.username)
    status = service.email_status()
    if not status.hub_running:
        flash("Test email queued, but the hub is not running: it is sent when the hub starts.",
              "warning")
    elif not status.email_enabled:
        flash("Test email queued, but email is off in the hub: it will only be logged.",
              "warning")
    else:
        flash("Test email queued: the hub sends it within seconds.", "success")
    return redirect(url_for("alerting.index"))


@bp.route("/motion", methods=["POST"])
@admin_required
def motion() -> ResponseReturnValue:
    """Set the away switch, the armed hours of every camera and the site's time zone."""
    if not ButtonForm().validate_on_submit():
        abort(400, "The form was incomplete. Please try again.")
    change = {"away": request.form.get("away") == "on",
              "armed_hours": request.form.get("armed_hours", ""),
              "timezone": request.form.get("timezone", "")}
    try:
        schedule = motion_service.save_schedule(change, current_user.username)
    except motion_service.MotionSettingsError as exc:
        # shown again as typed: nothing is lost
        shown = motion_service.MotionAlertSchedule(
            change["away"], change["armed_hours"], motion_service.get_schedule().camera_hours,
            change["timezone"])
        return _page(status=400, motion_error=exc, motion_shown=shown)
    when = "around the clock (away)" if schedule.away else (
        f"during {schedule.armed_hours}" if schedule.armed_hours else "all day")
    flash(f"Motion alerts are armed {when}.", "success")
    return redirect(url_for("alerting.index"))
