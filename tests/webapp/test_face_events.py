"""Face sightings in the events API and page, the timeline's people lane, the crop route and
the cameras' "faces" state. Sightings are stored as the hub stores them (face_rows)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from nvrlib.catalog.models import Camera, FaceSighting, Person
from webapp.extensions import db

from .face_rows import add_sighting
from .test_api_cameras import (  # noqa: F401  (app, as_admin, as_viewer: fixtures)
    add_camera, app, as_admin, as_viewer,
)
from .test_events import pg_catalog  # noqa: F401  (fixture: a PostgreSQL catalog)
from .test_motion_api import add_motion

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
MINUTE = dt.timedelta(minutes=1)
CROP = b"\xff\xd8\xff\xe0" + b"\x00" * 64 + b"\xff\xd9"  # enough of a JPEG for a file server


class Face:
    """A stand-in PhotoFace: these tests need rows, not a face engine."""

    def __init__(self, seed: int) -> None:
        import numpy as np
        self.embedding = np.random.default_rng(seed).normal(0, 0.1, 128).astype(np.float32)
        self.crop = CROP
        self.size = 131


def add_person(app: Flask, name: str) -> int:
    with app.app_context():
        person = Person(name=name, name_key=name.casefold())
        db.session.add(person)
        db.session.commit()
        return person.id


@pytest.fixture
def seen(app: Flask) -> dict[str, int]:
    """Alice at the porch at 10:00, an unknown face there at 10:01 and at the yard at 10:02,
    Bob at the yard at 10:03 (no crop), and a motion event at 10:00."""
    alice, bob = add_person(app, "Alice"), add_person(app, "Bob")
    add_motion(app, "porch", T0)
    return {
        "alice": add_sighting(app, "porch", T0, face=Face(1), person=alice, distance=0.41234,
                              key="run-f1"),
        "unknown": add_sighting(app, "porch", T0 + MINUTE, face=Face(2), key="run-f2",
                                seconds=None),
        "yard": add_sighting(app, "yard", T0 + 2 * MINUTE, face=Face(3), key="run-f3"),
        "bob": add_sighting(app, "yard", T0 + 3 * MINUTE, face=Face(4), person=bob,
                            distance=0.3, key="run-f4", crop_path=None),
        "alice_id": alice, "bob_id": bob,
    }


def test_sightings_are_listed_with_person_distance_crop_and_play_link(
        as_viewer: FlaskClient, seen: dict[str, int]) -> None:
    rows = as_viewer.get("/api/v1/events?type=face").get_json()
    assert [row["id"] for row in rows] == [seen["bob"], seen["yard"], seen["unknown"],
                                           seen["alice"]]
    alice = rows[-1]
    assert alice == {
        "type": "face", "id": seen["alice"], "time": "2026-03-01T10:00:00.000Z",
        "camera": "porch", "start": "2026-03-01T10:00:00.000Z",
        "end": "2026-03-01T10:00:04.000Z", "ongoing": False, "end_lost": False, "person": "Alice",
        "person_id": seen["alice_id"], "distance": 0.4123,
        "box": {"x": 0.4, "y": 0.2, "w": 0.1, "h": 0.18}, "size": 131,
        "crop": f"/api/v1/events/face/{seen['alice']}/crop.jpg",
        "play": "/recordings/play?camera=porch&start=2026-03-01T09:59:58.000Z"}
    # open since 10:01 and now is 12:00: its final report was due within 10 min and never came
    assert rows[2]["person"] is None and rows[2]["end"] is None
    assert rows[2]["ongoing"] is False and rows[2]["end_lost"] is True
    assert rows[0]["crop"] is None


def test_the_person_filter_takes_a_name_or_unknown(as_viewer: FlaskClient,
                                                  seen: dict[str, int]) -> None:
    def ids(query: str) -> list[int]:
        answer = as_viewer.get(f"/api/v1/events?{query}")
        assert answer.status_code == 200, answer.get_json()
        return [row["id"] for row in answer.get_json()]

    assert ids("type=face&person=alice") == [seen["alice"]]
    assert ids("type=face&person=Unknown") == [seen["yard"], seen["unknown"]]
    assert ids("type=face&person=unknown&camera=porch") == [seen["unknown"]]
    assert ids("person=Bob") == [seen["bob"]]  # type all with a person: sightings only
    assert ids("type=face&start=2026-03-01T10:01:30Z") == [seen["bob"], seen["yard"],
                                                             seen["unknown"]]
    types = {row["type"] for row in as_viewer.get("/api/v1/events").get_json()}
    assert types == {"face", "motion"}
    assert as_viewer.get("/api/v1/events?type=alert").get_json() == []


@pytest.mark.parametrize("query,words", [
    ("type=motion&person=Alice", "goes with type=face"),
    ("type=face&person=Nobody", "no person called 'Nobody'"),
    ("type=face&person=" + "x" * 65, "64"), ("type=faces", "type"),
])
def test_bad_person_filters_are_400(as_viewer: FlaskClient, seen: dict[str, int], query: str,
                                    words: str) -> None:
    answer = as_viewer.get(f"/api/v1/events?{query}")
    assert answer.status_code == 400
    assert words in answer.get_json()["error"]


def test_erased_sightings_are_never_shown(app: Flask, as_viewer: FlaskClient,
                                          seen: dict[str, int]) -> None:
    with app.app_context():
        db.session.execute(update(FaceSighting).where(FaceSighting.id == seen["yard"])
                           .values(embedding=None, erased_at=T0))
        db.session.commit()
    ids = [row["id"] for row in as_viewer.get("/api/v1/events?type=face").get_json()]
    assert seen["yard"] not in ids and len(ids) == 3
    assert as_viewer.get(f"/api/v1/events/face/{seen['yard']}/crop.jpg").status_code == 404
    lane = as_viewer.get("/api/v1/timeline?start=2026-03-01T09:00:00Z&end=2026-03-01T11:00:00Z"
                         "&cameras=yard").get_json()["cameras"][0]["faces"]
    assert [mark["id"] for mark in lane] == [seen["bob"]]


def test_the_crop_is_served_from_the_storage_and_refused_outside_it(
        app: Flask, as_viewer: FlaskClient, seen: dict[str, int], tmp_path: Path) -> None:
    crop = as_viewer.get(f"/api/v1/events/face/{seen['alice']}/crop.jpg")
    assert crop.status_code == 200 and crop.mimetype == "image/jpeg" and crop.data == CROP
    crop.close()  # a file answer: the test client leaves closing it to the caller
    assert as_viewer.get(f"/api/v1/events/face/{seen['bob']}/crop.jpg").status_code == 404
    assert as_viewer.get("/api/v1/events/face/999/crop.jpg").status_code == 404
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(CROP)
    escaping = add_sighting(app, "porch", T0, face=Face(5), key="escape",
                            crop_path="../outside.jpg")
    assert as_viewer.get(f"/api/v1/events/face/{escaping}/crop.jpg").status_code == 403
    elsewhere = add_sighting(app, "porch", T0, face=Face(6), key="remote", hub="far")
    assert as_viewer.get(f"/api/v1/events/face/{elsewhere}/crop.jpg").status_code == 503


def test_the_timeline_has_a_people_lane_per_camera(as_viewer: FlaskClient,
                                                   seen: dict[str, int]) -> None:
    answer = as_viewer.get("/api/v1/timeline?start=2026-03-01T09:00:00Z"
                           "&end=2026-03-01T11:00:00Z&cameras=porch,yard")
    porch, yard = answer.get_json()["cameras"]
    assert porch["faces"] == [
        {"id": seen["alice"], "time": "2026-03-01T10:00:00.000Z", "person": "Alice",
         "person_id": seen["alice_id"]},
        {"id": seen["unknown"], "time": "2026-03-01T10:01:00.000Z", "person": None,
         "person_id": None}]
    assert [mark["person"] for mark in yard["faces"]] == [None, "Bob"]


def test_cameras_say_where_faces_run(app: Flask, as_viewer: FlaskClient,
                                     as_admin: FlaskClient) -> None:
    add_camera(app, "porch")
    add_camera(app, "yard")
    with app.app_context():
        db.session.execute(update(Camera).where(Camera.name == "porch")
                           .values(faces_seen_at=T0 + dt.timedelta(hours=1, minutes=55)))
        db.session.execute(update(Camera).where(Camera.name == "yard")
                           .values(faces_seen_at=T0))  # two hours ago: not running now
        db.session.commit()
    cameras = {c["name"]: c["faces"] for c in as_viewer.get("/api/v1/cameras").get_json()}
    assert cameras["porch"] == {"enabled": True, "active": True,
                                "seen_at": "2026-03-01T11:55:00.000Z"}
    assert cameras["yard"]["active"] is False
    assert as_admin.put("/api/v1/cameras/porch/faces", json={"enabled": False}
                        ).status_code == 200
    assert as_viewer.get("/api/v1/cameras/porch").get_json()["faces"]["active"] is False
    # the admin page's badge and switches
    page = as_admin.get("/admin/").get_data(as_text=True)
    assert "data-faces-badge" not in page
    assert as_admin.put("/api/v1/cameras/porch/faces", json={"enabled": True}
                        ).status_code == 200
    assert "data-faces-badge" in as_admin.get("/admin/").get_data(as_text=True)


def test_the_events_page_shows_face_rows_and_the_person_filter(
        as_viewer: FlaskClient, seen: dict[str, int]) -> None:
    page = as_viewer.get("/events/?type=face").get_data(as_text=True)
    assert page.count('data-event="face"') == 4
    assert f'/api/v1/events/face/{seen["alice"]}/crop.jpg' in page
    assert "Alice" in page and "0.41" in page and ">unknown<" in page
    assert '<option value="unknown"' in page and '<option value="Bob"' in page
    filtered = as_viewer.get("/events/?type=face&person=Bob").get_data(as_text=True)
    assert filtered.count('data-event="face"') == 1
    bad = as_viewer.get("/events/?type=motion&person=Bob")
    assert bad.status_code == 400


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(args=st.dictionaries(st.sampled_from(["type", "person", "camera", "start", "tz"]),
                            st.text(max_size=70), max_size=4))
def test_no_event_query_makes_a_500(as_viewer: FlaskClient, args: dict[str, Any]) -> None:
    answer = as_viewer.get("/api/v1/events", query_string=args)
    assert answer.status_code in (200, 400)


def test_the_camera_page_saves_its_two_face_switches(app: Flask, as_admin: FlaskClient) -> None:
    add_camera(app, "porch")
    page = as_admin.get("/admin/cameras/porch/motion").get_data(as_text=True)
    assert 'name="faces_enabled" checked' in page and 'name="faces_unknown_alerts">' in page
    answer = as_admin.post("/admin/cameras/porch/motion", data={
        "enabled": "on", "sensitivity": "50", "mask": "[]", "armed_hours": "",
        "faces_unknown_alerts": "on"})
    assert answer.status_code == 302
    switches = as_admin.get("/api/v1/cameras/porch/faces").get_json()
    assert (switches["enabled"], switches["unknown_alerts"]) == (False, True)


def test_faces_work_on_postgresql(make_app: Any, tmp_path: Path, pg_catalog: str,
                                  admin_user: Any) -> None:
    from .test_api_cameras import logged_in
    app = make_app(SQLALCHEMY_DATABASE_URI=pg_catalog,
                   USERS_DB_URL=f"sqlite:///{tmp_path / 'users.db'}")
    alice = add_person(app, "Alice")
    seen = add_sighting(app, "porch", T0, face=Face(1), person=alice, distance=0.4, key="pg-1")
    unknown = add_sighting(app, "porch", T0 + MINUTE, face=Face(2), key="pg-2")
    client = logged_in(app, admin_user)
    assert [e["id"] for e in client.get("/api/v1/events?person=unknown").get_json()] == [unknown]
    assert [e["id"] for e in client.get("/api/v1/events?type=face&person=ALICE").get_json()] \
        == [seen]
    lane = client.get("/api/v1/timeline?start=2026-03-01T09:00:00Z&end=2026-03-01T11:00:00Z"
                      ).get_json()["cameras"][0]["faces"]
    assert [(mark["id"], mark["time"]) for mark in lane] == [
        (seen, "2026-03-01T10:00:00.000Z"), (unknown, "2026-03-01T10:01:00.000Z")]
    assert client.get("/api/v1/people").get_json()[0]["last_seen"]["camera"] == "porch"
    bob = client.post("/api/v1/people", json={"name": "Bob"}).get_json()["id"]
    assert client.post(f"/api/v1/people/{alice}/merge", json={"into": bob}).status_code == 200
    assert client.delete(f"/api/v1/people/{bob}").status_code == 204
    assert [e["id"] for e in client.get("/api/v1/events?type=face").get_json()] == [unknown]
