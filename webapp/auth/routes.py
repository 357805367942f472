"""Views of the auth blueprint: login (throttled) and logout."""

from __future__ import annotations

import logging
import math

from flask import current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select

from ..extensions import db
from ..models import User, burn_password_check
from ..security import client_address, end_session, now, safe_next, start_session
from . import bp
from .forms import LoginForm, LogoutForm
from .throttle import THROTTLE_EXTENSION, LoginThrottle

logger = logging.getLogger(__name__)


def login_throttle() -> LoginThrottle:
    """Return the app's failed-login throttle."""
    return current_app.extensions[THROTTLE_EXTENSION]


def _keys(username: str) -> tuple[str, str]:
    return f"user:{username.casefold()}", f"addr:{client_address()}"


def _authenticate(username: str, password: str) -> User | None:
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        burn_password_check(password)  # as slow as a real check: no username probing by timing
        return None
    if not user.check_password(password) or not user.active:
        return None
    return user


def _locked_response(form: LoginForm, username: str, wait: float) -> ResponseReturnValue:
    logger.warning("refused login for %r from %s: locked for another %d s",
                   username[:64], client_address(), math.ceil(wait))
    minutes = max(1, math.ceil(wait / 60))
    flash(f"Too many failed logins. Try again in {minutes} minute{'s' if minutes != 1 else ''}.",
          "danger")
    response = current_app.make_response((render_template("auth/login.html", form=form), 429))
    response.headers["Retry-After"] = str(math.ceil(wait))
    return response


def _record_failure(username: str) -> None:
    throttle = login_throttle()
    logger.warning("failed login for %r from %s", username[:64], client_address())
    for key in throttle.record_failure(_keys(username)):
        kind, _, value = key.partition(":")
        what = "account" if kind == "user" else "address"
        logger.warning("locked logins for %s %r for %d s after %d failures", what, value[:64],
                       throttle.lock_seconds, throttle.max_failures)


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
    wait = login_throttle().retry_after(_keys(username))
    if wait > 0:
        return _locked_response(form, username, wait)
    user = _authenticate(username, password)
    if user is None:
        _record_failure(username)
        flash("Wrong username or password.", "danger")
        return render_template("auth/login.html", form=form), 401
    login_throttle().reset(_keys(username)[0])
    user.last_login_at = now()
    db.session.commit()
    start_session(user, remember=bool(form.remember.data))
    logger.info("user %r logged in from %s", user.username, client_address())
    return redirect(target or url_for("main.index"))


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
