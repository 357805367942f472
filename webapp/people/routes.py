"""Views of the People page: a card per person, enrolment from photos and from recent unknown
faces, rename, alert switch, merge, delete and export (changes for admins only).

Each form posts here and comes back to the page with what happened as flash messages; the work
is faces_service's, as for the API (the CSRF token is checked by webapp.security's guard).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from .. import face_engine
from .. import faces_service as people
from ..security import admin_required, body_limit, current_user_is_admin, now
from . import bp

logger = logging.getLogger(__name__)

MAX_PHOTOS = 10  # files in one upload, each its own result
MAX_UPLOAD_BYTES = MAX_PHOTOS * face_engine.MAX_PHOTO_BYTES
# the multipart framing around the files; the limit must hold before the CSRF check reads the body
UPLOAD_SLACK = 64 * 1024
LAST_SEEN_DAYS = 7  # a card's "last seen" link shows the person's sightings of this long


def _back() -> ResponseReturnValue:
    return redirect(url_for("people.index"))


def _user() -> str:
    return str(current_user.username)


def _flash_error(exc: people.FacesError, prefix: str = "") -> None:
    flash(f"{prefix}{exc}", "danger" if exc.status != 409 else "warning")


@bp.route("/")
def index() -> ResponseReturnValue:
    """Show every person with their samples, and the recent unknown faces."""
    everyone = people.people_with_samples()
    since = now().replace(microsecond=0) - dt.timedelta(days=LAST_SEEN_DAYS)
    return render_template("people/index.html", people=everyone,
                           unknown=people.recent_unknown(), crop_url=people.sighting_crop_url,
                           admin=current_user_is_admin(), since=since,
                           max_photos=MAX_PHOTOS)


@bp.post("/add")
@admin_required
def add() -> ResponseReturnValue:
    """Add a person by name."""
    try:
        person = people.create_person(request.form.get("name", ""), None, _user())
    except people.FacesError as exc:
        _flash_error(exc)
    else:
        flash(f"Added {person.name}. Now upload photos of their face.", "success")
    return _back()


def _photos() -> list[Any]:
    return [upload for upload in request.files.getlist("photo") if upload.filename]


@bp.post("/<int:person_id>/photos")
@body_limit(MAX_UPLOAD_BYTES + UPLOAD_SLACK)
@admin_required
def photos(person_id: int) -> ResponseReturnValue:
    """Enroll each uploaded photo; each file gets its own message."""
    uploads = _photos()
    if not uploads:
        flash("Choose one or more photos first.", "warning")
    elif len(uploads) > MAX_PHOTOS:
        flash(f"At most {MAX_PHOTOS} photos at once.", "warning")
        uploads = []
    force = request.form.get("force") == "on"
    for upload in uploads:
        name = upload.filename
        data = upload.read(face_engine.MAX_PHOTO_BYTES + 1)
        if len(data) > face_engine.MAX_PHOTO_BYTES:
            flash(f"{name}: larger than {face_engine.MAX_PHOTO_BYTES >> 20} MiB.", "warning")
            continue
        try:
            people.enroll_photo(person_id, data, force, _user())
        except people.FacesError as exc:
            _flash_error(exc, f"{name}: ")
        else:
            flash(f"{name}: added.", "success")
    return _back()


@bp.post("/<int:person_id>/rename")
@admin_required
def rename(person_id: int) -> ResponseReturnValue:
    """Give a person another name."""
    try:
        person = people.update_person(person_id, {"name": request.form.get("name", "")},
                                      _user())
    except people.FacesError as exc:
        _flash_error(exc)
    else:
        flash(f"Renamed to {person.name}.", "success")
    return _back()


@bp.post("/<int:person_id>/alert")
@admin_required
def alert(person_id: int) -> ResponseReturnValue:
    """Switch "alert me when seen" on or off."""
    wanted = request.form.get("alert") == "on"
    try:
        person = people.update_person(person_id, {"alert": wanted}, _user())
    except people.FacesError as exc:
        _flash_error(exc)
    else:
        flash(f"Alerts for {person.name} are {'on' if wanted else 'off'}.", "success")
    return _back()


@bp.post("/<int:person_id>/merge")
@admin_required
def merge(person_id: int) -> ResponseReturnValue:
    """Merge a person into another one."""
    into = request.form.get("into", "")
    try:
        person = people.merge(person_id, int(into) if into.isdigit() else into, _user())
    except people.FacesError as exc:
        _flash_error(exc)
    else:
        flash(f"Merged into {person.name}.", "success")
    return _back()


@bp.post("/<int:person_id>/delete")
@admin_required
def delete(person_id: int) -> ResponseReturnValue:
    """Delete a person: their samples, and their sightings' face data (footage stays)."""
    try:
        name = people.get_person(person_id).name
        erased = people.delete_person(person_id, _user())
    except people.FacesError as exc:
        _flash_error(exc)
    else:
        flash(f"Deleted {name}; {erased} sighting{'s' if erased != 1 else ''} erased. "
              "The footage stays until retention removes it.", "success")
    return _back()


@bp.post("/<int:person_id>/samples/<int:sample_id>/delete")
@admin_required
def delete_sample(person_id: int, sample_id: int) -> ResponseReturnValue:
    """Delete one sample."""
    try:
        people.delete_sample(person_id, sample_id, _user())
    except people.FacesError as exc:
        _flash_error(exc)
    else:
        flash("Sample deleted.", "success")
    return _back()


def _person_for_sighting(form: Any) -> tuple[int, bool]:
    """The person a "This is..." form names (a chosen one, or a new one by name), and whether
    they were added just now."""
    chosen = form.get("person", "")
    if chosen and chosen != "new":
        if not chosen.isdigit():
            raise people.BadRequest("person: choose a person or a new name")
        return int(chosen), False
    return people.create_person(form.get("name", ""), None, _user()).id, True


@bp.post("/sightings/<int:sighting_id>/name")
@admin_required
def name_sighting(sighting_id: int) -> ResponseReturnValue:
    """Enroll an unknown face as a person's ("This is..."), and name similar ones if asked."""
    relabel = request.form.get("relabel") == "on"
    force = request.form.get("force") == "on"
    added = False
    try:
        person_id, added = _person_for_sighting(request.form)
        _, named = people.enroll_sighting(person_id, sighting_id, relabel, force, _user())
        person = people.get_person(person_id)
    except people.FacesError as exc:
        if added:  # a refused face leaves no empty person behind
            people.delete_person(person_id, _user())
        _flash_error(exc)
    else:
        also = f" and {named} similar unknown face{'s' if named != 1 else ''}" if named else ""
        flash(f"Named this face{also} {person.name}.", "success")
    return _back()
