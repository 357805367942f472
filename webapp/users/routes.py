"""Views of the users blueprint (admins only; each checks the user it fetched)."""

from __future__ import annotations

import logging

from flask import abort, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import func, select

from .. import login_sessions
from ..auth import face_signin
from ..extensions import db
from ..models import ROLE_ADMIN, User
from ..security import admin_required, now
from . import bp
from .forms import ActionForm, CreateUserForm, PasswordForm, RoleForm

logger = logging.getLogger(__name__)


def _get_user(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        abort(404, "No such user.")
    return user


def _require_post_form() -> None:
    # The guard checked the CSRF token already; this also rejects a malformed form.
    if not ActionForm().validate_on_submit():
        abort(400, "The form was incomplete. Please try again.")


def _other_active_admins(user: User) -> int:
    return db.session.scalar(
        select(func.count()).select_from(User)
        .where(User.role == ROLE_ADMIN, User.active.is_(True), User.id != user.id)) or 0


def _would_remove_last_admin(user: User) -> bool:
    return user.is_admin and user.active and _other_active_admins(user) == 0


def _back() -> ResponseReturnValue:
    return redirect(url_for("users.index"))


@bp.route("/")
@admin_required
def index() -> ResponseReturnValue:
    """List every account with its role, state, last login, live sessions and API token."""
    users = db.session.scalars(select(User).order_by(User.username)).all()
    return render_template("users/list.html", users=users, role_form=RoleForm(),
                           session_counts=login_sessions.live_counts())


@bp.route("/new", methods=["GET", "POST"])
@admin_required
def create() -> ResponseReturnValue:
    """Create an account with a role and an initial password."""
    form = CreateUserForm()
    if form.validate_on_submit():
        username = form.username.data or ""
        if db.session.scalar(select(User.id).where(User.username == username)) is not None:
            form.username.errors = [*form.username.errors, "That username is taken."]
        else:
            user = User(username=username, role=form.role.data, created_at=now())
            user.set_password(form.password.data or "")
            db.session.add(user)
            db.session.commit()
            logger.info("%r created user %r (%s)", current_user.username, user.username, user.role)
            flash(f"Created user {user.username}.", "success")
            return _back()
    status = 400 if form.errors else 200
    return render_template("users/new.html", form=form), status


@bp.route("/<int:user_id>/disable", methods=["POST"])
@admin_required
def disable(user_id: int) -> ResponseReturnValue:
    """Disable an account: it can no longer log in, and its sessions and token stop working."""
    _require_post_form()
    user = _get_user(user_id)
    if _would_remove_last_admin(user):
        flash("You cannot disable the last active admin.", "danger")
        return _back()
    user.active = False
    user.end_sessions()
    db.session.commit()
    logger.info("%r disabled user %r", current_user.username, user.username)
    flash(f"Disabled {user.username}.", "success")
    return _back()


@bp.route("/<int:user_id>/enable", methods=["POST"])
@admin_required
def enable(user_id: int) -> ResponseReturnValue:
    """Enable a disabled account again."""
    _require_post_form()
    user = _get_user(user_id)
    user.active = True
    db.session.commit()
    logger.info("%r enabled user %r", current_user.username, user.username)
    flash(f"Enabled {user.username}.", "success")
    return _back()


@bp.route("/<int:user_id>/role", methods=["POST"])
@admin_required
def change_role(user_id: int) -> ResponseReturnValue:
    """Make an account an admin or a viewer."""
    form = RoleForm()
    if not form.validate_on_submit():
        abort(400, "Unknown role.")
    user = _get_user(user_id)
    if form.role.data != ROLE_ADMIN and _would_remove_last_admin(user):
        flash("You cannot make the last active admin a viewer.", "danger")
        return _back()
    user.role = form.role.data
    db.session.commit()
    logger.info("%r made user %r %s", current_user.username, user.username, user.role)
    flash(f"{user.username} is now {'an admin' if user.is_admin else 'a viewer'}.", "success")
    return _back()


@bp.route("/<int:user_id>/password", methods=["GET", "POST"])
@admin_required
def reset_password(user_id: int) -> ResponseReturnValue:
    """Set a new password for an account (which ends its sessions, but the admin's own)."""
    user = _get_user(user_id)
    form = PasswordForm()
    if form.validate_on_submit():
        user.set_password(form.password.data or "", keep_session=current_user.login_token)
        db.session.commit()
        logger.info("%r reset the password of user %r", current_user.username, user.username)
        flash(f"Set a new password for {user.username}.", "success")
        return _back()
    status = 400 if form.errors else 200
    return render_template("users/password.html", form=form, user=user), status


@bp.route("/<int:user_id>/sessions/revoke", methods=["POST"])
@admin_required
def sign_out_everywhere(user_id: int) -> ResponseReturnValue:
    """End every session and remember-me cookie of an account (but the admin's own session)."""
    _require_post_form()
    user = _get_user(user_id)
    user.end_sessions(keep=current_user.login_token)
    db.session.commit()
    logger.info("%r signed user %r out everywhere", current_user.username, user.username)
    flash(f"Signed {user.username} out everywhere"
          f"{' else' if user.id == current_user.id else ''}.", "success")
    return _back()


@bp.route("/<int:user_id>/token", methods=["POST"])
@admin_required
def create_token(user_id: int) -> ResponseReturnValue:
    """Create (or replace) an account's API token and show it this once."""
    _require_post_form()
    user = _get_user(user_id)
    if not user.active:
        flash("Enable the account before giving it an API token.", "warning")
        return _back()
    token = user.new_api_token(now())
    db.session.commit()
    logger.info("%r created an API token for user %r", current_user.username, user.username)
    # Rendered, not flashed: a flash would sit in the (readable) session cookie.
    return render_template("users/token.html", user=user, token=token)


@bp.route("/<int:user_id>/token/revoke", methods=["POST"])
@admin_required
def revoke_token(user_id: int) -> ResponseReturnValue:
    """Revoke an account's API token."""
    _require_post_form()
    user = _get_user(user_id)
    user.revoke_api_token()
    db.session.commit()
    logger.info("%r revoked the API token of user %r", current_user.username, user.username)
    flash(f"Revoked the API token of {user.username}.", "success")
    return _back()


@bp.route("/<int:user_id>/face-signin/off", methods=["POST"])
@admin_required
def face_signin_off(user_id: int) -> ResponseReturnValue:
    """Turn an account's face sign-in off and delete its face data (e.g. a lost or changed face)."""
    _require_post_form()
    user = _get_user(user_id)
    face_signin.turn_off(user)
    logger.info("%r turned face sign-in off for user %r", current_user.username, user.username)
    flash(f"Face sign-in is off for {user.username}.", "success")
    return _back()
