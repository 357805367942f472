"""Locks with limits (issue 9): viewer caps on count and hours, admins exempt, every-camera rule.

The audit's step: a viewer locked years of footage with three locks. Now a viewer is refused
(the form: 400 with the reason under the field; the API: 403 naming the cap), an admin is not,
and the caps an admin sets on the Locks page are stored in the catalog. The migration's
placeholder reason for old locks is checked at the end.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from alembic import command
from sqlalchemy import create_engine, text

from nvrlib.catalog import db as catalog_db
from nvrlib.catalog.models import Setting
from webapp.extensions import db

from .helpers import Account
from .test_protect import add_lock, html_of, lock_rows, login
from .test_recordings_support import (  # noqa: F401  (catalog, viewer_client: fixtures)
    T0, CatalogWriter, at, catalog, viewer_client,
)

HOUR = dt.timedelta(hours=1)


def api_lock(client: FlaskClient, hours: float, offset_days: int = 0, camera: str | None = "porch",
             note: str = "theft") -> tuple[int, dict]:
    """POST a lock of ``hours`` starting ``offset_days`` before T0; return (status, JSON)."""
    start = T0 - dt.timedelta(days=offset_days)
    response = client.post("/api/v1/locks", json={
        "camera": camera, "start": start.isoformat(), "end": (start + hours * HOUR).isoformat(),
        "note": note})
    return response.status_code, response.get_json()


def form_lock(client: FlaskClient, hours: float, camera: str = "porch") -> tuple[int, str]:
    """POST the Protect form for ``hours`` from T0 (UTC); return (status, page)."""
    end = T0 + hours * HOUR
    response = client.post("/protect/new", data={
        "camera": camera, "start": T0.strftime("%Y-%m-%dT%H:%M:%S"),
        "end": end.strftime("%Y-%m-%dT%H:%M:%S"), "tz": "UTC", "note": "parcel stolen"})
    return response.status_code, response.get_data(as_text=True)


def test_the_default_caps_refuse_a_viewers_eleventh_lock_and_73rd_hour_in_the_api(
        app: Flask, viewer_client: FlaskClient, catalog: CatalogWriter) -> None:
    catalog.camera("porch")
    assert viewer_client.get("/api/v1/locks/limits").get_json() == {
        "max_locks": 10, "max_hours": 72.0, "used_locks": 0, "used_hours": 0.0, "capped": True}
    status, body = api_lock(viewer_client, hours=72.5)
    assert status == 403 and body["error"].startswith("hours: a viewer's locks may cover at "
                                                      "most 72 hours in all")
    for day in range(9):
        assert api_lock(viewer_client, hours=1, offset_days=day)[0] == 201
    status, _ = api_lock(viewer_client, hours=63.5, offset_days=20)  # 72.5 hours in all
    assert status == 403
    assert api_lock(viewer_client, hours=63, offset_days=20)[0] == 201  # lock 10, 72 hours
    status, body = api_lock(viewer_client, hours=0.01, offset_days=30)
    assert status == 403 and body["error"] == (
        "locks: a viewer may hold at most 10 locks and this would be lock 11; remove one, "
        "or ask an admin")
    assert len(lock_rows(app)) == 10  # the refused ones left nothing behind
    usage = viewer_client.get("/api/v1/locks/limits").get_json()
    assert (usage["used_locks"], usage["used_hours"]) == (10, 72.0)


def test_the_form_says_which_cap_and_an_admin_is_not_capped(
        app: Flask, viewer_client: FlaskClient, admin_user: Account,
        catalog: CatalogWriter) -> None:
    catalog.camera("porch")
    status, page = form_lock(viewer_client, hours=100)
    assert status == 400 and 'class="invalid-feedback"' in page
    assert "hours: a viewer&#39;s locks may cover at most 72 hours in all" in page
    assert "you hold 0 covering 0.0 hours" in page
    admin = login(app, admin_user)
    status, _ = form_lock(admin, hours=100)
    assert status == 302
    assert api_lock(admin, hours=24 * 300, offset_days=400)[0] == 201
    for day in range(11):
        assert api_lock(admin, hours=1, offset_days=day)[0] == 201
    assert len(lock_rows(app)) == 13
    assert html_of(admin, "/protect/").count('<span class="badge text-bg-dark">admin</span>') == 13
    # the admin's locks take nothing from the viewer's caps
    assert api_lock(viewer_client, hours=72, offset_days=500)[0] == 201


def test_a_lock_on_every_camera_needs_an_admin(app: Flask, viewer_client: FlaskClient,
                                               admin_user: Account,
                                               catalog: CatalogWriter) -> None:
    catalog.camera("porch")
    status, body = api_lock(viewer_client, hours=1, camera=None)
    assert status == 403
    assert body["error"] == "camera: a lock on every camera needs an admin; choose one camera"
    status, page = form_lock(viewer_client, hours=1, camera="")
    assert status == 400 and "a lock on every camera needs an admin" in page
    assert lock_rows(app) == []
    admin = login(app, admin_user)
    status, body = api_lock(admin, hours=1, camera=None)
    assert status == 201 and body["camera"] is None and body["admin"] is True


def test_an_admin_sets_the_caps_on_the_locks_page_and_viewers_cannot(
        app: Flask, viewer_client: FlaskClient, admin_user: Account,
        catalog: CatalogWriter) -> None:
    catalog.camera("porch")
    assert "data-lock-limits" not in html_of(viewer_client, "/protect/")
    assert viewer_client.post("/protect/limits", data={"max_locks": "50",
                                                       "max_hours": "9999"}).status_code == 403
    admin = login(app, admin_user)
    assert 'name="max_locks"' in html_of(admin, "/protect/")
    refused = admin.post("/protect/limits", data={"max_locks": "-1", "max_hours": "2"})
    assert refused.status_code == 400 and "From 0 to 1000." in refused.get_data(as_text=True)
    for hours in ("nan", "inf", "lots"):
        odd = admin.post("/protect/limits", data={"max_locks": "5", "max_hours": hours})
        assert odd.status_code == 400 and 'class="invalid-feedback"' in odd.get_data(as_text=True)
    assert "From 0 to 8784 hours." in admin.post("/protect/limits", data={
        "max_locks": "5", "max_hours": "nan"}).get_data(as_text=True)
    saved = admin.post("/protect/limits", data={"max_locks": "2", "max_hours": "1.5"})
    assert saved.status_code == 302
    with app.app_context():
        stored = {row.key: row.value for row in db.session.query(Setting)}
    assert stored["locks.max_count"] == "2" and stored["locks.max_hours"] == "1.5"
    assert "Viewers may hold at most 2 locks covering\n    1.5 hours" in html_of(
        viewer_client, "/protect/")
    assert api_lock(viewer_client, hours=1)[0] == 201
    status, body = api_lock(viewer_client, hours=1, offset_days=1)
    assert status == 403 and body["error"].startswith("hours: ")


def test_a_yielded_lock_is_marked_on_the_locks_page_and_in_the_api(
        app: Flask, viewer_client: FlaskClient, catalog: CatalogWriter) -> None:
    catalog.camera("porch")
    lock_id = add_lock(app, "porch", at(3600), at(7200), created_by="mallory", note="fox")
    with app.app_context():
        db.session.execute(text("UPDATE locks SET yielded_at = :now, original_start = :was "
                                "WHERE id = :id"),
                           {"now": at(60).replace(tzinfo=None), "id": lock_id,
                            "was": at(0).replace(tzinfo=None)})
        db.session.commit()
    assert "data-yielded" in html_of(viewer_client, "/protect/")
    body = viewer_client.get(f"/api/v1/locks/{lock_id}").get_json()
    assert body["yielded_at"] == "2026-03-01T10:01:00.000Z"
    assert body["original_start"] == "2026-03-01T10:00:00.000Z"


def test_the_migration_gives_old_locks_without_a_note_a_placeholder_reason(
        tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    config = catalog_db.alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0004")
        connection.execute(text(
            "INSERT INTO locks (camera_id, start_time, end_time, note, created_by, created_at) "
            "VALUES (NULL, '2020-01-01', '2026-01-01', '', 'mallory', '2026-01-01'), "
            "(NULL, '2020-01-01', '2026-01-01', 'kept', 'bob', '2026-01-01')"))
        command.upgrade(config, "0006")
        rows = connection.execute(text("SELECT note, admin, yielded_at FROM locks "
                                       "ORDER BY id")).all()
    engine.dispose()
    assert rows == [("(no reason given: locked before reasons were required)", 0, None),
                    ("kept", 0, None)]
