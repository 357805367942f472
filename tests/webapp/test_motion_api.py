"""Motion in the API: motion events listed and filtered, recordings with motion, snapshots,
each camera's motion settings and the motion-alert schedule (admins only)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from nvrlib.catalog.models import Camera, MotionEvent, Setting
from webapp.extensions import db

from .helpers import FakeClock
from .test_api_cameras import (  # noqa: F401  (app, as_admin, as_viewer: fixtures)
    add_camera, app, as_admin, as_viewer, camera_row, logged_in,
)
from .test_events import pg_catalog  # noqa: F401  (fixture: a PostgreSQL catalog)
from .test_recordings_support import T0, CatalogWriter

UTC = dt.timezone.utc
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64 + b"\xff\xd9"  # enough of a JPEG for a file server


def add_motion(app: Flask, camera: str, start: dt.datetime, seconds: float | None = 5.0, *,
               score: float = 0.25, snapshot: str | None = None, jpeg: bytes | None = JPEG,
               hub: str = "main") -> int:
    """Store a motion event as the hub would (and its snapshot file); return its id.

    ``seconds`` None: the event is still going on.
    """
    with app.app_context():
        camera_id = db.session.scalar(select(Camera.id).where(Camera.name == camera))
        if camera_id is None:
            row = Camera(name=camera)
            db.session.add(row)
            db.session.flush()
            camera_id = row.id
        if snapshot is not None and jpeg is not None and ".." not in snapshot:
            target = Path(app.config["STORAGE_ROOT"]) / snapshot
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(jpeg)
        end = start + dt.timedelta(seconds=seconds) if seconds is not None else None
        event = MotionEvent(camera_id=camera_id, event_key=f"{camera}-{start.isoformat()}",
                            start_time=start, end_time=end, score=score, box_x=0.1, box_y=0.2,
                            box_w=0.3, box_h=0.4, snapshot_path=snapshot, source="edge",
                            hub_id=hub)
        db.session.add(event)
        db.session.commit()
        return event.id


# -- GET /api/v1/events?type=motion --------------------------------------------------------------

def test_motion_events_are_listed_with_their_box_snapshot_and_play_link(
        app: Flask, as_viewer: FlaskClient) -> None:
    event_id = add_motion(app, "porch", T0, 4.5, score=0.31, snapshot="porch/motion/1.jpg")
    add_motion(app, "porch", T0 + dt.timedelta(minutes=1), None)
    answer = as_viewer.get("/api/v1/events?type=motion")
    assert answer.status_code == 200
    ongoing, first = answer.get_json()
    assert first == {
        "type": "motion", "id": event_id, "time": "2026-03-01T10:00:00.000Z", "camera": "porch",
        "start": "2026-03-01T10:00:00.000Z", "end": "2026-03-01T10:00:04.500Z",
        "ongoing": False, "end_lost": False, "duration": 4.5, "score": 0.31,
        "box": {"x": 0.1, "y": 0.2, "w": 0.3, "h": 0.4}, "source": "edge",
        "snapshot": f"/api/v1/events/motion/{event_id}/snapshot.jpg",
        "play": "/recordings/play?camera=porch&start=2026-03-01T09:59:58.000Z"}
    assert ongoing["ongoing"] is True and ongoing["end"] is None and ongoing["snapshot"] is None
    assert ongoing["duration"] == 7140.0  # until the fake clock's now, 12:00


def test_an_event_open_longer_than_any_lasts_lost_its_end(app: Flask,
                                                           as_viewer: FlaskClient) -> None:
    now = dt.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # the fake clock's
    going = add_motion(app, "porch", now - dt.timedelta(hours=5), None)
    lost = add_motion(app, "porch", now - dt.timedelta(hours=7), None)  # its edge died (6 h max)
    rows = {row["id"]: row for row in as_viewer.get("/api/v1/events?type=motion").get_json()}
    assert (rows[going]["ongoing"], rows[going]["end_lost"], rows[going]["duration"]) == (
        True, False, 18000.0)
    assert (rows[lost]["ongoing"], rows[lost]["end_lost"], rows[lost]["duration"]) == (
        False, True, None)
    assert rows[lost]["end"] is None


def test_motion_filters_by_camera_and_time_overlap_and_pages(
        app: Flask, as_viewer: FlaskClient) -> None:
    for minute in range(5):
        add_motion(app, "porch", T0 + dt.timedelta(minutes=minute), 30)
    add_motion(app, "yard", T0, 30)
    rows = as_viewer.get("/api/v1/events?type=motion&camera=porch").get_json()
    assert [r["start"][11:16] for r in rows] == ["10:04", "10:03", "10:02", "10:01", "10:00"]
    # 10:00:20 to 10:01:10 overlaps the events of 10:00 (until 10:00:30) and 10:01
    rows = as_viewer.get("/api/v1/events?type=motion&camera=porch"
                         "&start=2026-03-01T11:00:20&end=2026-03-01T11:01:10&tz=+01:00").get_json()
    assert [r["start"][11:16] for r in rows] == ["10:01", "10:00"]
    first = as_viewer.get("/api/v1/events?type=motion&camera=porch&limit=2")
    assert len(first.get_json()) == 2 and 'rel="next"' in first.headers["Link"]
    third = as_viewer.get("/api/v1/events?type=motion&camera=porch&limit=2&page=3")
    assert [r["start"][11:16] for r in third.get_json()] == ["10:00"]
    assert "Link" not in third.headers
    assert as_viewer.get("/api/v1/events?type=motion&camera=nowhere").get_json() == []


def test_all_events_include_motion_and_alerts_exclude_it(app: Flask,
                                                         as_viewer: FlaskClient) -> None:
    add_motion(app, "porch", T0)
    types = {row["type"] for row in as_viewer.get("/api/v1/events").get_json()}
    assert types == {"motion"}
    assert as_viewer.get("/api/v1/events?type=alert").get_json() == []
    assert as_viewer.get("/api/v1/events?type=outage").get_json() == []


@pytest.mark.parametrize("query,name", [
    ("type=movement", "type"), ("type=motion&start=yesterday", "start"),
    ("type=motion&tz=Mars/Olympus", "tz"), ("type=motion&page=0", "page"),
    ("type=motion&kind=motion", "kind"),
])
def test_bad_motion_queries_are_400_naming_the_parameter(as_viewer: FlaskClient, query: str,
                                                         name: str) -> None:
    answer = as_viewer.get(f"/api/v1/events?{query}")
    assert answer.status_code == 400
    assert answer.get_json()["error"].startswith(f"{name}:")


# -- GET /api/v1/recordings?motion=true ----------------------------------------------------------

def test_motion_true_keeps_only_recordings_that_overlap_motion(app: Flask,
                                                               as_viewer: FlaskClient) -> None:
    catalog = CatalogWriter(app)
    segments = [catalog.segment("porch", T0 + dt.timedelta(seconds=10 * n), 10.0)
                for n in range(8)]
    catalog.segment("yard", T0, 10.0)
    add_motion(app, "porch", T0 + dt.timedelta(seconds=12), 3)  # inside segment 1
    add_motion(app, "porch", T0 + dt.timedelta(seconds=35), 20)  # 3, 4 and 5 (until 55 s)
    add_motion(app, "porch", T0 + dt.timedelta(seconds=78), None)  # 7, still going on
    add_motion(app, "yard", T0 + dt.timedelta(seconds=40), 5)  # another camera's
    answer = as_viewer.get("/api/v1/recordings?camera=porch&motion=true&order=asc")
    assert answer.status_code == 200
    assert [r["id"] for r in answer.get_json()] == [segments[n].id for n in (1, 3, 4, 5, 7)]
    everything = as_viewer.get("/api/v1/recordings?camera=porch&motion=false").get_json()
    assert len(everything) == 8
    assert as_viewer.get("/api/v1/recordings?motion=true&camera=yard").get_json() == []
    bad = as_viewer.get("/api/v1/recordings?motion=yes")
    assert bad.status_code == 400 and bad.get_json()["error"].startswith("motion:")


# -- GET /api/v1/events/motion/<id>/snapshot.jpg -------------------------------------------------

def test_the_snapshot_is_served_to_users_and_404_when_absent(app: Flask, as_viewer: FlaskClient,
                                                             client: FlaskClient) -> None:
    with_file = add_motion(app, "porch", T0, snapshot="porch/motion/a.jpg")
    gone = add_motion(app, "porch", T0 + dt.timedelta(minutes=1), snapshot="porch/motion/b.jpg",
                      jpeg=None)
    without = add_motion(app, "porch", T0 + dt.timedelta(minutes=2))
    answer = as_viewer.get(f"/api/v1/events/motion/{with_file}/snapshot.jpg")
    assert answer.status_code == 200 and answer.mimetype == "image/jpeg"
    assert answer.data == JPEG
    answer.close()
    for event_id in (gone, without, 999999):
        assert as_viewer.get(f"/api/v1/events/motion/{event_id}/snapshot.jpg").status_code == 404
    assert client.get(f"/api/v1/events/motion/{with_file}/snapshot.jpg").status_code == 401


def test_a_snapshot_path_that_leaves_the_storage_is_refused(app: Flask, as_viewer: FlaskClient,
                                                            tmp_path: Path) -> None:
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(JPEG)
    escaping = add_motion(app, "porch", T0, snapshot="../secret.jpg")
    answer = as_viewer.get(f"/api/v1/events/motion/{escaping}/snapshot.jpg")
    assert answer.status_code == 403 and JPEG not in answer.data


# -- PUT /api/v1/cameras/<camera>/motion ---------------------------------------------------------

def test_an_admin_changes_motion_settings_and_the_detector_is_told(
        app: Flask, as_admin: FlaskClient, clock: FakeClock) -> None:
    add_camera(app, "porch")
    assert camera_row(app, "porch").motion_updated_at is None
    mask = [[[0, 0], [0.5, 0], [0.5, 0.25]]]
    answer = as_admin.put("/api/v1/cameras/porch/motion", json={
        "enabled": False, "sensitivity": 80, "mask": mask, "alerts": True})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json() == {"camera": "porch", "enabled": False, "sensitivity": 80,
                                 "mask": [[[0.0, 0.0], [0.5, 0.0], [0.5, 0.25]]], "alerts": True,
                                 "updated_at": "2026-03-01T12:00:00.000Z"}
    row = camera_row(app, "porch")
    assert (row.motion_enabled, row.motion_sensitivity, row.motion_alerts) == (False, 80, True)
    assert json.loads(row.motion_mask) == mask
    clock.advance(minutes=5)
    as_admin.put("/api/v1/cameras/porch/motion", json={"sensitivity": 20})
    row = camera_row(app, "porch")
    assert row.motion_sensitivity == 20 and row.motion_enabled is False  # the rest stays
    assert row.motion_updated_at == clock.now
    assert as_admin.get("/api/v1/cameras/porch/motion").get_json()["sensitivity"] == 20


@pytest.mark.parametrize("body,field", [
    ({"sensitivity": 0}, "sensitivity"), ({"sensitivity": 101}, "sensitivity"),
    ({"sensitivity": "high"}, "sensitivity"), ({"sensitivity": "70"}, "sensitivity"),
    ({"sensitivity": 50.5}, "sensitivity"), ({"enabled": "yes"}, "enabled"),
    ({"alerts": 1}, "alerts"), ({"mask": "[]"}, "mask"), ({"mask": [[[0, 0], [1, 1]]]}, "mask"),
    ({"mask": [[[0, 0], [1, 1.5], [0, 1]]]}, "mask"), ({"mask": [[[0, 0], [1, 1], [0]]]}, "mask"),
    ({"mask": [[[0, 0], [1, 1], ["a", 0]]]}, "mask"), ({"colour": "red"}, "colour"),
    ([1, 2], "body"),
])
def test_bad_motion_settings_are_400_naming_the_field_and_change_nothing(
        app: Flask, as_admin: FlaskClient, body: Any, field: str) -> None:
    add_camera(app, "porch")
    answer = as_admin.put("/api/v1/cameras/porch/motion", json=body)
    assert answer.status_code == 400
    assert answer.get_json()["error"].startswith(f"{field}:")
    row = camera_row(app, "porch")
    assert (row.motion_sensitivity, row.motion_mask, row.motion_updated_at) == (50, "[]", None)


def test_viewers_may_not_read_or_change_motion_settings(app: Flask,
                                                        as_viewer: FlaskClient) -> None:
    add_camera(app, "porch")
    assert as_viewer.put("/api/v1/cameras/porch/motion",
                         json={"sensitivity": 90}).status_code == 403
    assert as_viewer.get("/api/v1/cameras/porch/motion").status_code == 403
    assert as_viewer.put("/api/v1/alerts/motion", json={"away": True}).status_code == 403
    assert camera_row(app, "porch").motion_sensitivity == 50


def test_an_unknown_camera_is_404(as_admin: FlaskClient) -> None:
    assert as_admin.put("/api/v1/cameras/nowhere/motion", json={}).status_code == 404


def test_session_changes_need_the_csrf_token(make_app: Any, admin_user: Any) -> None:
    app = make_app(WTF_CSRF_ENABLED=True)
    add_camera(app, "porch")
    client = logged_in(app, admin_user)
    assert client.put("/api/v1/cameras/porch/motion", json={"sensitivity": 70}).status_code == 400
    assert camera_row(app, "porch").motion_sensitivity == 50


# -- PUT /api/v1/alerts/motion -------------------------------------------------------------------

def _settings(app: Flask) -> dict[str, str]:
    with app.app_context():
        return {row.key: row.value for row in db.session.scalars(select(Setting))}


def test_an_admin_sets_away_armed_hours_and_the_zone(app: Flask, as_admin: FlaskClient) -> None:
    add_camera(app, "porch")
    answer = as_admin.put("/api/v1/alerts/motion", json={
        "away": True, "armed_hours": "22:00-6:00", "timezone": "Europe/Paris",
        "camera_hours": {"porch": "08:00-09:30; 12:00-13:00"}})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json() == {"away": True, "armed_hours": "22:00-06:00",
                                 "camera_hours": {"porch": "08:00-09:30, 12:00-13:00"},
                                 "timezone": "Europe/Paris"}
    assert _settings(app) == {"motion.away": "1", "motion.armed_hours": "22:00-06:00",
                              "motion.timezone": "Europe/Paris",
                              "motion.armed_hours.porch": "08:00-09:30, 12:00-13:00"}
    as_admin.put("/api/v1/alerts/motion", json={"away": False, "camera_hours": {"porch": ""}})
    assert as_admin.get("/api/v1/alerts/motion").get_json() == {
        "away": False, "armed_hours": "22:00-06:00", "camera_hours": {},
        "timezone": "Europe/Paris"}


@pytest.mark.parametrize("body,field", [
    ({"armed_hours": "late"}, "armed_hours"), ({"armed_hours": "25:00-06:00"}, "armed_hours"),
    ({"armed_hours": "06:00-06:00"}, "armed_hours"), ({"away": "on"}, "away"),
    ({"timezone": "Mars/Olympus"}, "timezone"), ({"camera_hours": {"nowhere": ""}},
                                                 "camera_hours"),
    ({"camera_hours": {"porch": "9-5"}}, "camera_hours.porch"), ({"schedule": 1}, "schedule"),
])
def test_a_bad_schedule_is_400_naming_the_field(app: Flask, as_admin: FlaskClient, body: Any,
                                                field: str) -> None:
    add_camera(app, "porch")
    answer = as_admin.put("/api/v1/alerts/motion", json=body)
    assert answer.status_code == 400
    assert answer.get_json()["error"].startswith(f"{field}:")
    assert _settings(app) == {}


# -- PostgreSQL ----------------------------------------------------------------------------------

def test_motion_events_and_recordings_with_motion_on_postgresql(
        make_app: Any, tmp_path: Path, pg_catalog: str, viewer_user: Any) -> None:
    app = make_app(SQLALCHEMY_DATABASE_URI=pg_catalog,
                   USERS_DB_URL=f"sqlite:///{tmp_path / 'users.db'}")
    catalog = CatalogWriter(app)
    segments = [catalog.segment("porch", T0 + dt.timedelta(seconds=10 * n), 10.0)
                for n in range(4)]
    inside = add_motion(app, "porch", T0 + dt.timedelta(seconds=12), 3)
    ongoing = add_motion(app, "porch", T0 + dt.timedelta(seconds=28), None)
    client = logged_in(app, viewer_user)
    events = client.get("/api/v1/events?type=motion&start=2026-03-01T10:00:00Z").get_json()
    assert [e["id"] for e in events] == [ongoing, inside]
    answer = client.get("/api/v1/recordings?camera=porch&motion=true&order=asc")
    assert [r["id"] for r in answer.get_json()] == [s.id for s in segments[1:]]
