"""Face sign-in's second step: /auth/login/face takes a picture and starts the session.

The page (GET) shows the camera; its script posts one picture (multipart ``photo``, the CSRF
token in X-CSRFToken) and reads a JSON answer: 200 ``{"next"}``, or an ``{"error"}`` with
400 (no usable face), 401 (not the user's face; or ``"login"`` when the pending login is gone),
413, 415, 429 (throttled, Retry-After) or 503 (no face engine). Every try is logged with its
distance, never the picture.
"""

from __future__ import annotations

import logging

from flask import Response, flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from .. import face_engine
from ..security import body_limit, client_address
from . import bp, face_signin
from .routes import log_in, login_throttle
from .throttle import ThrottleRefused

logger = logging.getLogger(__name__)

# The picture plus the multipart framing around it.
BODY_MAX_BYTES = face_signin.PHOTO_MAX_BYTES + 64 * 1024
EXPIRED = "Face sign-in took too long. Please log in again."


@bp.route("/login/face", methods=["GET", "POST"])
@body_limit(BODY_MAX_BYTES)
def login_face() -> ResponseReturnValue:
    """Show the camera (GET) or check a picture of the face of a login that passed its password."""
    held = face_signin.pending()
    if held is None:
        face_signin.forget_pending()
        if request.method == "POST":
            return _json_error(401, EXPIRED, login=url_for("auth.login"))
        flash(EXPIRED, "info")
        return redirect(url_for("auth.login"))
    if request.method == "GET":
        return render_template("auth/login_face.html", username=held.user.username,
                               warning=face_signin.WARNING)
    return _check_picture(held)


def _json_error(status: int, message: str, **extra: str) -> Response:
    response = jsonify(error=message, **extra)
    response.status_code = status
    return response


def _uploaded_photo() -> bytes | ResponseReturnValue:
    """The ``photo`` field's bytes, or the error answer for a request without a usable one."""
    if request.mimetype != "multipart/form-data":
        return _json_error(415, "Send the picture as multipart/form-data (field 'photo').")
    photo = request.files.get("photo")
    if photo is None:
        return _json_error(400, "The request has no 'photo' field.")
    data = photo.read(face_signin.PHOTO_MAX_BYTES + 1)
    if len(data) > face_signin.PHOTO_MAX_BYTES:
        return _json_error(413, "The picture is larger than 2 MiB.")
    return data


def _check_picture(held: face_signin.Pending) -> ResponseReturnValue:
    data = _uploaded_photo()
    if not isinstance(data, bytes):
        return data
    user, address = held.user, client_address()
    throttle = login_throttle()
    try:  # counted before the face is compared, as a password check is
        reservation = throttle.reserve(user.username, address, factor="face")
    except ThrottleRefused as refused:
        logger.warning("refused face sign-in for %r from %s: throttled (%s) for another %d s",
                       user.username, address, refused.reason, refused.retry_after)
        response = _json_error(429, f"Too many tries. Try again in {refused.retry_after} s.")
        response.headers["Retry-After"] = str(refused.retry_after)
        return response
    try:
        embedding = face_signin.face_of(data)
    except (face_signin.PictureProblem, face_engine.EngineMissing) as exc:
        throttle.release(reservation)  # nothing was compared
        logger.info("face sign-in for %r from %s: no usable face (%s)", user.username, address,
                    exc)
        status = 503 if isinstance(exc, face_engine.EngineMissing) else 400
        return _json_error(status, str(exc))
    distance = face_signin.nearest(embedding, user)
    if distance > face_signin.THRESHOLD:
        logger.warning("face sign-in for %r from %s refused: distance %.3f > %.2f",
                       user.username, address, distance, face_signin.THRESHOLD)
        return _json_error(401, "That does not look like you. Try again: face the camera, "
                                "in good light.")
    logger.info("face sign-in for %r from %s accepted: distance %.3f", user.username, address,
                distance)
    throttle.succeeded(reservation, user.id)
    log_in(user, held.remember)
    return jsonify(next=held.next or url_for("main.index"))

