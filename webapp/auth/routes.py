"""Views of the auth blueprint: login (throttled in the users database) and logout.

Face sign-in's second step, /auth/login/face, is in `face_routes`."""

from __future__ import annotations

import logging

from flask import current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select

from ..extensions import db
from ..models import User, burn_password_check
from ..security import client_address, end_session, now, safe_next, start_session
from . import bp, face_signin
from .forms import LoginForm, LogoutForm
from .throttle import THROTTLE_EXTENSION, LoginThrottle, ThrottleRefused

logger = logging.getLogger(__name__)


def login_throttle() -> LoginThrottle:
    """Return the app's failed-login throttle."""
    return current_app.extensions[THROTTLE_EXTENSION]


def _authenticate(username: str, password: str) -> User | None:
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        burn_password_check(password)  # as slow as a real check: no username probing by timing
        return None
    if not user.check_password(password) or not user.active:
        return None
    return user


# What a refused try is told; {wait} is in seconds, as in the Retry-After header.
REFUSAL_MESSAGES = {
    "address": "Too many attempts from your address. Try again in {wait} s.",
    "account": ("This account is getting many wrong passwords from elsewhere, so its logins "
                "are slowed down. Try again in {wait} s."),
}


def _refused_response(form: LoginForm, username: str,
                      refused: ThrottleRefused) -> ResponseReturnValue:
    logger.warning("refused login for %r from %s: throttled (%s) for another %d s",
                   username[:64], client_address(), refused.reason, refused.retry_after)
    flash(REFUSAL_MESSAGES[refused.reason].format(wait=refused.retry_after), "danger")
    response = current_app.make_response((render_template("auth/login.html", form=form), 429))
    response.headers["Retry-After"] = str(refused.retry_after)
    return response


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """Log a user in with username and password; failures are throttled and logged."""
    target = safe_next(request.args.get("next"))
    if current_user.is_authenticated:
        return redirect(target or url_for("main.index"))
    form = LoginForm()
    if not form.validate_on_submit():
        return render_template("auth/login.html", form=form), 400 if form.errors else 200
    username, password = form.username.data or "", form.password.data or ""
    throttle = login_throttle()
    throttle.purge()
    try:  # the check is counted before the password is verified: parallel tries gain nothing
        reservation = throttle.reserve(username, client_address())
    except ThrottleRefused as refused:
        return _refused_response(form, username, refused)
    user = _authenticate(username, password)
    if user is None:
        logger.warning("failed login for %r from %s", username[:64], client_address())
        flash("Wrong username or password.", "danger")
        return render_template("auth/login.html", form=form), 401
    throttle.succeeded(reservation, user.id)
    if face_signin.required_for(user):  # the right password; the face is still to come
        face_signin.begin(user, bool(form.remember.data), target)
        logger.info("user %r gave the right password from %s; face sign-in next",
                    user.username, client_address())
        return redirect(url_for("auth.login_face"))
    log_in(user, bool(form.remember.data))
    return redirect(target or url_for("main.index"))


def log_in(user: User, remember: bool) -> None:
    """Start the user's session: the last step of every login (password, or password and face)."""
    user.last_login_at = now()
    db.session.commit()
    start_session(user, remember=remember)
    logger.info("user %r logged in from %s", user.username, client_address())


@bp.route("/logout", methods=["POST"])
def logout() -> ResponseReturnValue:
    """Log the current user out and revoke the session (a POST carrying the CSRF token)."""
    form = LogoutForm()
    if not form.validate_on_submit():
        flash("Could not log out: the form expired. Please try again.", "warning")
        return redirect(url_for("main.index"))
    logger.info("user %r logged out", current_user.username)
    end_session()  # revoked on the server: saved copies of the cookies are worthless now
    flash("You have been logged out.", "info")
    return redirect(url_for("auth.login"))
