"""The admin panel's ingest tokens: admins only, validated, shown once, revoked once."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient

from nvrlib.catalog.models import IngestToken
from webapp.extensions import db

from .test_api_cameras import app, as_admin, as_viewer  # noqa: F401  (fixtures)


def test_viewers_get_403_on_the_token_pages(as_viewer: FlaskClient) -> None:
    assert as_viewer.get("/admin/tokens").status_code == 403
    assert as_viewer.post("/admin/tokens", data={"camera": "porch"}).status_code == 403
    assert as_viewer.post("/admin/tokens/1/revoke").status_code == 403


def test_a_bad_camera_name_is_a_400_naming_it(app: Flask, as_admin: FlaskClient) -> None:
    response = as_admin.post("/admin/tokens", data={"camera": "../etc"})
    assert response.status_code == 400 and "data-token>" not in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.query(IngestToken).count() == 0


def test_a_token_is_shown_once_not_cached_and_revoked(app: Flask, as_admin: FlaskClient) -> None:
    made = as_admin.post("/admin/tokens", data={"camera": "porch", "note": "porch edge"})
    assert made.status_code == 200 and made.headers["Cache-Control"] == "no-store"
    token = re.search(r"data-token>([^<]+)</code>", made.get_data(as_text=True)).group(1)
    listing = as_admin.get("/admin/tokens").get_data(as_text=True)
    assert token not in listing and "porch edge" in listing and "active" in listing
    with app.app_context():
        row = db.session.query(IngestToken).one()
        assert row.token_hash == IngestToken.hash_of(token) and row.created_by == "alice"
        token_id = row.id
    assert as_admin.post(f"/admin/tokens/{token_id}/revoke").status_code == 302
    assert as_admin.post(f"/admin/tokens/{token_id}/revoke").status_code == 302  # idempotent
    assert as_admin.post("/admin/tokens/999/revoke").status_code == 404
    with app.app_context():
        assert db.session.get(IngestToken, token_id).revoked_by == "alice"
    assert "revoked" in as_admin.get("/admin/tokens").get_data(as_text=True)
