"""Views of the account blueprint: turn face sign-in on (password and three pictures) or off.

The enrollment form is posted by the page's script (multipart: ``password`` and three
``photo`` files, the CSRF token in X-CSRFToken) and answered in JSON: 200 ``{"next"}``, or an
``{"error"}`` with 400 (a picture without exactly one face, or pictures of different people),
401 (wrong password), 413, 415, 429 or 503 (no face engine). Everything 404s while the app's
FACE_SIGNIN is off.
"""

from __future__ import annotations

import logging

from flask import Response, abort, flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import func, select

from .. import face_engine
from ..auth import face_signin
from ..auth.routes import login_throttle
from ..auth.throttle import ThrottleRefused
from ..extensions import db
from ..models import User, UserFace
from ..security import body_limit, client_address
from . import bp
from .forms import FaceEnrollForm, FaceOffForm

logger = logging.getLogger(__name__)

ENROLL_BODY_MAX_BYTES = face_signin.ENROLL_PICTURES * face_signin.PHOTO_MAX_BYTES + 64 * 1024


@bp.before_request
def _only_when_offered() -> None:
    if not face_signin.enabled():
        abort(404)


def _me() -> User:
    user = db.session.get(User, current_user.id)
    if user is None:  # the session's user was just deleted
        abort(404)
    return user


def _error(status: int, message: str) -> Response:
    response = jsonify(error=message)
    response.status_code = status
    return response


@bp.route("/face")
def face() -> ResponseReturnValue:
    """Show whether face sign-in is on, with the camera to turn it on (again) and the off switch."""
    user = _me()
    count, since = db.session.execute(
        select(func.count(UserFace.id), func.min(UserFace.created_at))
        .where(UserFace.user_id == user.id)).one()
    return render_template("account/face.html", user=user, pictures=count, since=since,
                           form=FaceEnrollForm(), off_form=FaceOffForm(),
                           warning=face_signin.WARNING, needed=face_signin.ENROLL_PICTURES)


@bp.route("/face", methods=["POST"])
@body_limit(ENROLL_BODY_MAX_BYTES)
def enroll() -> ResponseReturnValue:
    """Turn face sign-in on: the password again, then three pictures each holding one face."""
    if request.mimetype != "multipart/form-data":
        return _error(415, "Send the form as multipart/form-data.")
    form = FaceEnrollForm()
    if not form.validate_on_submit():
        return _error(400, "Enter your password.")
    photos = request.files.getlist("photo")
    if len(photos) != face_signin.ENROLL_PICTURES:
        return _error(400, f"Take {face_signin.ENROLL_PICTURES} pictures "
                           f"({len(photos)} arrived).")
    user = _me()
    refused = _check_password(user, form.password.data or "")
    if refused is not None:
        return refused
    try:
        embeddings = [face_signin.face_of(_read(photo), f"Picture {number}")
                      for number, photo in enumerate(photos, 1)]
        face_signin.enroll(user, embeddings)
    except face_signin.PictureProblem as exc:
        return _error(400, str(exc))
    except face_engine.EngineMissing as exc:
        return _error(503, str(exc))
    logger.info("user %r turned face sign-in on (%d pictures)", user.username, len(embeddings))
    flash("Face sign-in is on: after your password, you will show your face.", "success")
    return jsonify(next=url_for("account.face"))


def _read(photo: object) -> bytes:
    data = photo.read(face_signin.PHOTO_MAX_BYTES + 1)  # type: ignore[attr-defined]
    if len(data) > face_signin.PHOTO_MAX_BYTES:
        abort(413, "A picture is larger than 2 MiB.")
    return data


def _check_password(user: User, password: str) -> Response | None:
    """Check the password again, throttled as a login is; the refusal answer, or None."""
    throttle = login_throttle()
    try:
        reservation = throttle.reserve(user.username, client_address())
    except ThrottleRefused as refused:
        response = _error(429, f"Too many wrong passwords. Try again in {refused.retry_after} s.")
        response.headers["Retry-After"] = str(refused.retry_after)
        return response
    if not user.check_password(password):
        logger.warning("wrong password for %r turning face sign-in on, from %s", user.username,
                       client_address())
        return _error(401, "Wrong password.")
    throttle.succeeded(reservation, user.id)
    return None


@bp.route("/face/off", methods=["POST"])
def turn_off() -> ResponseReturnValue:
    """Turn face sign-in off and delete the stored face embeddings."""
    if not FaceOffForm().validate_on_submit():
        abort(400, "The form was incomplete. Please try again.")
    user = _me()
    face_signin.turn_off(user)
    logger.info("user %r turned face sign-in off", user.username)
    flash("Face sign-in is off; your face data is deleted.", "success")
    return redirect(url_for("account.face"))
