"""Views of the protect blueprint: the Locks page, the Protect form and buttons, Remove.

Every logged-in user may lock one camera's footage, with a reason and within the viewer caps an
admin sets here (the Limits form); a lock is removed by an admin or by whoever made it.
The rules are in `webapp.protect.locks`; these views turn its errors into form errors (the
form) or an error page with the status it names (the buttons).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import SelectChoice

from .. import catalog_queries
from ..catalog_queries import iso_utc
from ..recordings.params import MAX_RANGE, ParamError, int_param, parse_time, parse_tz
from ..security import admin_required, current_user_is_admin, safe_next
from . import bp, limits, locks
from .forms import ALL_CAMERAS, ActionForm, LimitsForm, LockForm, NoteForm

logger = logging.getLogger(__name__)

PAGE_SIZE = 50
MAX_PAGE = 2000
_FORM_FIELDS = ("camera", "start", "end", "note")


def _utc_text(value: dt.datetime) -> str:
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _what(view: locks.LockView) -> str:
    """Describe a lock in a flash message (plain UTC: flashes are not localized)."""
    return (f"{view.camera or 'every camera'} from {_utc_text(view.start)} "
            f"to {_utc_text(view.end)}")


def _require_valid(form: FlaskForm) -> None:
    # The guard checked the CSRF token already; this also rejects a malformed form.
    if not form.validate_on_submit():
        problems = [error for errors in form.errors.values() for error in errors]
        abort(400, problems[0] if problems else "The form was incomplete. Please try again.")


def _back(form: FlaskForm) -> ResponseReturnValue:
    return redirect(safe_next(form.next.data) or url_for("protect.index"))


def play_url(view: locks.LockView) -> str | None:
    """Return the player of a one-camera lock from its start (None for every-camera locks)."""
    if view.camera is None:
        return None
    args: dict[str, str] = {"camera": view.camera, "start": iso_utc(view.start)}
    if view.end - view.start <= MAX_RANGE:
        args["end"] = iso_utc(view.end)
    return url_for("recordings.play", **args)


def _page_url(args: Mapping[str, str], page: int) -> str:
    return url_for("protect.index", **{**args, "page": str(page)})


@bp.route("/")
def index() -> ResponseReturnValue:
    """List the locks, latest range first, optionally those protecting one camera."""
    return _index()


def _index(limits_form: LimitsForm | None = None) -> ResponseReturnValue:
    args = {key: value for key, value in request.args.items() if key in ("camera", "page")}
    camera = args.get("camera", "").strip() or None
    try:
        page_no = int_param(args, "page", 1, 1, MAX_PAGE)
        rows, has_next = locks.list_locks(camera, limit=PAGE_SIZE,
                                          offset=(page_no - 1) * PAGE_SIZE)
    except ParamError as exc:
        abort(400, str(exc))
    except locks.LockError as exc:
        abort(exc.status, str(exc))
    username, admin = current_user.username, current_user_is_admin()
    caps = limits.current_limits()
    if limits_form is None and admin:
        limits_form = LimitsForm(data={"max_locks": caps.max_count, "max_hours": caps.max_hours})
    context: dict[str, Any] = {
        "limits": caps, "usage": limits.usage_of(username), "is_admin": admin,
        "limits_form": limits_form,
        "locks": rows, "camera": camera, "cameras": catalog_queries.camera_names(),
        "page_no": page_no, "action_form": ActionForm(),
        "removable": lambda view: view.removable_by(username, admin), "play_url": play_url,
        "prev_url": _page_url(args, page_no - 1) if page_no > 1 else None,
        "next_url": _page_url(args, page_no + 1) if has_next else None,
    }
    status = 400 if limits_form is not None and limits_form.errors else 200
    return render_template("protect/index.html", **context), status


@bp.route("/limits", methods=["POST"])
@admin_required
def save_limits() -> ResponseReturnValue:
    """Set the viewer caps (admins): most locks per user, most locked hours per user."""
    form = LimitsForm()
    if form.validate_on_submit():
        try:
            caps = limits.save_limits(form.max_locks.data, form.max_hours.data,
                                      current_user.username)
        except limits.LimitError as exc:  # "max_hours: from 0 to 8784": under that field
            name, _, text = str(exc).partition(": ")
            field = form.max_hours if name == "max_hours" else form.max_locks
            field.errors = [*field.errors, text]
        else:
            flash(f"Viewers may now hold {caps.max_count} locks covering {caps.max_hours:g} "
                  f"hours in all.", "success")
            return redirect(url_for("protect.index"))
    return _index(form)


def _local_input(value: dt.datetime, tz: dt.tzinfo) -> str:
    """Format a time for a datetime-local field, in ``tz``."""
    return value.astimezone(tz).strftime("%Y-%m-%dT%H:%M:%S")


def _prefill(args: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The form's values from a link (camera, start, end in ISO-8601, tz, note, next).

    Returns the field data and the ISO instants of the times (data-iso: recordings.js shows
    them in the browser's zone). A malformed time is left out rather than refused.
    """
    data: dict[str, Any] = {key: args.get(key, "") for key in ("camera", "tz", "note", "next")}
    instants: dict[str, str] = {}
    try:
        tz = parse_tz(data["tz"])
    except ParamError:
        tz, data["tz"] = dt.timezone.utc, ""
    for name in ("start", "end"):
        try:
            value = parse_time(args[name], name, tz) if args.get(name, "").strip() else None
        except ParamError:
            value = None
        if value is not None:
            data[name] = _local_input(value, tz)
            instants[name] = iso_utc(value)
    return data, instants


def _camera_choices(admin: bool) -> list[SelectChoice]:
    # "All cameras" is offered to admins only; a viewer who posts it anyway gets the rule's error
    every = [SelectChoice(ALL_CAMERAS, "All cameras (admins only)")] if admin else []
    return [*every, *(SelectChoice(name, name) for name in catalog_queries.camera_names())]


def _add_error(form: LockForm, exc: Exception) -> None:
    """Put an error whose message starts with a field's name ("end: ...") under that field."""
    name, _, text = str(exc).partition(": ")
    field = getattr(form, name if name in _FORM_FIELDS else "start")
    field.errors = [*field.errors, text if name in _FORM_FIELDS else str(exc)]


def _create(form: LockForm) -> locks.LockView | None:
    """Lock the form's range; on a bad value, add the error to its field and return None."""
    try:
        tz = parse_tz(form.tz.data)
        start = parse_time(form.start.data or "", "start", tz)
        end = parse_time(form.end.data or "", "end", tz)
        return locks.create_lock(form.camera.data or None, start, end, form.note.data or "",
                                 current_user.username, current_user_is_admin())
    except (ParamError, locks.LockError) as exc:
        _add_error(form, exc)
        return None


@bp.route("/new", methods=["GET", "POST"])
def new() -> ResponseReturnValue:
    """Protect a time range of one camera or of all (the form; also the player's Protect)."""
    instants: dict[str, str] = {}
    if request.method == "GET":
        data, instants = _prefill(request.args)
        form = LockForm(data=data)
    else:
        form = LockForm()
    form.camera.choices = _camera_choices(current_user_is_admin())
    if form.validate_on_submit():
        view = _create(form)
        if view is not None:
            flash(f"Protected {_what(view)}: retention will not delete this footage.", "success")
            return _back(form)
    status = 400 if form.errors else 200
    return render_template("protect/new.html", form=form, instants=instants,
                           is_admin=current_user_is_admin(), limits=limits.current_limits(),
                           usage=limits.usage_of(current_user.username)), status


@bp.route("/recordings/<int:segment_id>", methods=["POST"])
def protect_recording(segment_id: int) -> ResponseReturnValue:
    """Protect exactly one recording (segment): its camera from its start to its end."""
    form = NoteForm()
    _require_valid(form)
    try:
        view = locks.lock_recording(segment_id, form.note.data or "", current_user.username,
                                    current_user_is_admin())
    except locks.LockError as exc:
        abort(exc.status, str(exc))
    flash(f"Protected {_what(view)}: retention will not delete this recording.", "success")
    return _back(form)


@bp.route("/<int:lock_id>/remove", methods=["POST"])
def remove(lock_id: int) -> ResponseReturnValue:
    """Remove a lock (admins, or the user who made it); the footage becomes deletable again."""
    form = ActionForm()
    _require_valid(form)
    try:
        view = locks.remove_lock(lock_id, current_user.username, current_user_is_admin())
    except locks.LockError as exc:
        abort(exc.status, str(exc))
    flash(f"Removed the lock on {_what(view)}.", "success")
    return _back(form)
