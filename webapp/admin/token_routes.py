"""Views of the admin blueprint for per-camera ingest tokens (admins only)."""

from __future__ import annotations

from flask import abort, flash, make_response, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from ..security import admin_required
from . import bp
from .forms import ActionForm, IngestTokenForm
from .ingest_tokens import create_token, list_tokens, revoke_token


@bp.route("/tokens", methods=["GET", "POST"])
@admin_required
def tokens() -> ResponseReturnValue:
    """List ingest tokens; make a new one and show it this once."""
    form = IngestTokenForm()
    token = None
    if form.validate_on_submit():
        camera = (form.camera.data or "").strip()
        token = create_token(camera, (form.note.data or "").strip(), current_user.username)
        form = IngestTokenForm(formdata=None)
    status = 400 if form.errors else 200
    response = make_response(render_template("admin/tokens.html", form=form, token=token,
                                             tokens=list_tokens()), status)
    response.headers["Cache-Control"] = "no-store"  # the new token must not stay in a cache
    return response


@bp.route("/tokens/<int:token_id>/revoke", methods=["POST"])
@admin_required
def revoke(token_id: int) -> ResponseReturnValue:
    """Revoke a token: the hub refuses it within a second and closes the streams it opened."""
    if not ActionForm().validate_on_submit():
        abort(400, "The form was incomplete. Please try again.")
    row = revoke_token(token_id, current_user.username)
    if row is None:
        abort(404, f"There is no ingest token {token_id}.")
    flash(f"Revoked token {row.id} of camera {row.camera}.", "success")
    return redirect(url_for("admin.tokens"))
