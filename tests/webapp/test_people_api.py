"""People in the API: enrolling real photos (and refusing faces that do not fit), enrolling from
a sighting, renaming, merging, deleting (which erases the sightings), exporting, the face
settings, and who may do what. The face engine is the web app's own: one per process."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from nvrlib import faces
from nvrlib.catalog.models import FaceSample, Setting
from tests.support.face_photos import missing_reason
from tests.support.requirements import require
from webapp import face_engine
from webapp.extensions import db

from .face_rows import add_sighting, blank_png, photo, side_by_side, sighting
from .test_api_cameras import (  # noqa: F401  (app, as_admin, as_viewer: fixtures)
    add_camera, app, as_admin, as_viewer,
)

require(missing_reason(), module_level=True,
        remedy="fetch them with scripts/fetch-face-photos.sh; scripts/test.sh does")

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
PHOTOS = ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "astronaut.png")


@pytest.fixture(scope="module")
def found() -> dict[str, face_engine.PhotoFace]:
    """The face of each test photo, found once for the module by the web app's engine."""
    with Flask(__name__).app_context():
        return {name: face_engine.one_face(photo(name)) for name in PHOTOS}


def new_person(client: FlaskClient, name: str, **extra: Any) -> dict[str, Any]:
    answer = client.post("/api/v1/people", json={"name": name, **extra})
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()


def upload(client: FlaskClient, person: int, name: str, data: bytes | None = None,
           force: bool = False) -> Any:
    form: dict[str, Any] = {"photo": FileStorage(
        io.BytesIO(data if data is not None else photo(name)), name)}
    if force:
        form["force"] = "1"
    return post_form(client, f"/api/v1/people/{person}/photos", form)


def post_form(client: FlaskClient, path: str, form: dict[str, Any]) -> Any:
    """POST a multipart form encoded in memory (the test client's own encoding of a body over
    500 kB leaves a temp file open)."""
    boundary, body = encode_multipart(form)
    return client.post(path, data=body, content_type=f"multipart/form-data; boundary={boundary}")


def sample_count(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(FaceSample)) or 0


# -- people ------------------------------------------------------------------------------------

def test_a_person_is_added_listed_renamed_and_shown(as_admin: FlaskClient) -> None:
    created = as_admin.post("/api/v1/people", json={"name": "  Alice  "})
    assert created.status_code == 201
    alice = created.get_json()
    assert created.headers["Location"].endswith(f"/api/v1/people/{alice['id']}")
    assert alice | {"created": None} == {"id": alice["id"], "name": "Alice", "alert": False,
                                         "samples": [], "created": None, "last_seen": None,
                                         "photo": None}
    new_person(as_admin, "bob")
    assert [p["name"] for p in as_admin.get("/api/v1/people").get_json()] == ["Alice", "bob"]
    renamed = as_admin.patch(f"/api/v1/people/{alice['id']}", json={"name": "Alicia",
                                                                     "alert": True})
    assert renamed.status_code == 200
    assert renamed.get_json()["name"] == "Alicia" and renamed.get_json()["alert"] is True
    assert as_admin.get(f"/api/v1/people/{alice['id']}").get_json()["name"] == "Alicia"


BAD_NAMES = [("", 400, "empty"), ("   ", 400, "empty"), ("x" * 65, 400, "64"),
             ("ß" * 40, 400, "64"),
             ("Unknown", 400, "unknown"), ("a\nb", 400, "control"), (42, 400, "string"),
             ("ALICE", 409, "already")]


def test_bad_or_taken_names_are_refused_saying_why(as_admin: FlaskClient) -> None:
    new_person(as_admin, "Alice")
    for name, status, words in BAD_NAMES:  # one app for the table: each case is a request
        answer = as_admin.post("/api/v1/people", json={"name": name})
        assert answer.status_code == status, name
        assert words in answer.get_json()["error"], name


def test_unknown_people_are_404(as_admin: FlaskClient) -> None:
    assert as_admin.get("/api/v1/people/99").status_code == 404
    assert as_admin.patch("/api/v1/people/99", json={"name": "x"}).status_code == 404
    assert as_admin.delete("/api/v1/people/99").status_code == 404
    assert upload(as_admin, 99, "obama.jpg").status_code == 404
    assert as_admin.get("/api/v1/people/99/export.zip").status_code == 404


# -- enrolling photos --------------------------------------------------------------------------

def test_photos_of_the_same_face_enroll_and_another_face_needs_force(
        app: Flask, as_admin: FlaskClient) -> None:
    obama = new_person(as_admin, "Obama")["id"]
    first = upload(as_admin, obama, "obama.jpg")
    assert first.status_code == 201, first.get_json()
    sample = first.get_json()
    assert sample["source"] == "photo"
    assert sample["crop"] == f"/api/v1/people/{obama}/samples/{sample['id']}/crop.jpg"
    assert upload(as_admin, obama, "obama2.jpg").status_code == 201
    refused = upload(as_admin, obama, "biden.jpg")
    assert refused.status_code == 409
    assert "is 0.8" in refused.get_json()["error"] and "Obama's other samples" in \
        refused.get_json()["error"]
    assert upload(as_admin, obama, "biden.jpg", force=True).status_code == 201
    crop = as_admin.get(sample["crop"])
    assert crop.status_code == 200 and crop.mimetype == "image/jpeg"
    assert crop.data.startswith(b"\xff\xd8")
    assert as_admin.get(sample["crop"], headers={"If-None-Match": crop.headers["ETag"]}
                        ).status_code == 304
    person = as_admin.get(f"/api/v1/people/{obama}").get_json()
    assert len(person["samples"]) == 3 and person["photo"] == sample["crop"]


def test_a_face_like_another_persons_is_refused_naming_them(as_admin: FlaskClient) -> None:
    obama = new_person(as_admin, "Obama")["id"]
    biden = new_person(as_admin, "Biden")["id"]
    assert upload(as_admin, obama, "obama.jpg").status_code == 201
    refused = upload(as_admin, biden, "obama3.jpg")
    assert refused.status_code == 409
    assert "looks like Obama (0.3" in refused.get_json()["error"]
    collins = new_person(as_admin, "Collins")["id"]
    assert upload(as_admin, collins, "astronaut.png").status_code == 201


def test_photos_without_exactly_one_face_are_400(as_admin: FlaskClient) -> None:
    person = new_person(as_admin, "Someone")["id"]
    for data, words in [(blank_png(), "no face"), (b"not a picture at all", "not a JPEG or PNG"),
                        (side_by_side("obama.jpg", "biden.jpg"), "2 faces")]:
        answer = upload(as_admin, person, "x.jpg", data)
        assert answer.status_code == 400, words
        assert words in answer.get_json()["error"]


def test_uploads_that_are_not_one_photo_are_refused(as_admin: FlaskClient) -> None:
    person = new_person(as_admin, "Someone")["id"]
    missing = as_admin.post(f"/api/v1/people/{person}/photos", data={"other": "x"},
                            content_type="multipart/form-data")
    assert missing.status_code == 400 and "'photo'" in missing.get_json()["error"]
    assert as_admin.post(f"/api/v1/people/{person}/photos", data=photo("obama.jpg"),
                         content_type="image/jpeg").status_code == 415
    huge = upload(as_admin, person, "big.jpg", b"\xff\xd8" + b"\0" * (11 * 1024 * 1024))
    assert huge.status_code == 413
    assert upload(as_admin, person, "obama.jpg", None).status_code == 201  # still working
    bad_force = as_admin.post(f"/api/v1/people/{person}/photos",
                              data={"photo": (io.BytesIO(b"x"), "x.jpg"), "force": "yes"},
                              content_type="multipart/form-data")
    assert bad_force.status_code == 400


def test_without_the_engine_enrolling_a_photo_is_503(make_app: Any, admin_user: Any,
                                                     tmp_path: Path) -> None:
    from .test_api_cameras import logged_in
    app = make_app(FACE_MODELS=str(tmp_path / "no-models"))
    client = logged_in(app, admin_user)
    person = new_person(client, "Someone")["id"]
    answer = upload(client, person, "obama.jpg")
    assert answer.status_code == 503
    assert "not installed" in answer.get_json()["error"]


def test_a_person_holds_at_most_twenty_samples(app: Flask, as_admin: FlaskClient,
                                               found: dict[str, face_engine.PhotoFace]) -> None:
    person = new_person(as_admin, "Obama")["id"]
    with app.app_context():  # 20 samples as enrolment leaves them, without 20 engine runs
        db.session.add_all(FaceSample(person_id=person, source="photo",
                                      embedding=faces.embedding_to_bytes(
                                          found["obama.jpg"].embedding))
                           for _ in range(20))
        db.session.commit()
    full = upload(as_admin, person, "obama2.jpg", force=True)
    assert full.status_code == 409 and "20 samples" in full.get_json()["error"]
    samples = as_admin.get(f"/api/v1/people/{person}").get_json()["samples"]
    assert samples[0]["crop"] is None
    assert as_admin.delete(f"/api/v1/people/{person}/samples/{samples[0]['id']}"
                           ).status_code == 204
    assert as_admin.delete(f"/api/v1/people/{person}/samples/{samples[0]['id']}"
                           ).status_code == 404
    assert sample_count(app) == 19
    assert upload(as_admin, person, "obama2.jpg").status_code == 201


# -- enrolling from a sighting -----------------------------------------------------------------

def test_a_sighting_enrolls_names_itself_and_similar_unknowns(
        app: Flask, as_admin: FlaskClient, found: dict[str, face_engine.PhotoFace]) -> None:
    seen = add_sighting(app, "porch", T0, face=found["obama.jpg"])
    similar = add_sighting(app, "porch", T0 + dt.timedelta(minutes=1), face=found["obama2.jpg"])
    other = add_sighting(app, "porch", T0 + dt.timedelta(minutes=2), face=found["biden.jpg"])
    obama = new_person(as_admin, "Obama")["id"]
    answer = as_admin.post(f"/api/v1/people/{obama}/sightings",
                           json={"sighting": seen, "relabel": True})
    assert answer.status_code == 201, answer.get_json()
    body = answer.get_json()
    assert body["source"] == "sighting" and body["relabelled"] == 1
    assert as_admin.get(body["crop"]).data == found["obama.jpg"].crop  # read from the storage
    assert sighting(app, seen).person_id == obama
    assert sighting(app, similar).person_id == obama
    assert 0.2 < sighting(app, similar).distance < 0.6
    assert sighting(app, other).person_id is None


def test_bad_sighting_enrolments_are_400(as_admin: FlaskClient) -> None:
    person = new_person(as_admin, "Someone")["id"]
    for body, words in [
        ({"sighting": 999}, "no face sighting 999"), ({"sighting": "1"}, "must be the id"),
        ({"sighting": True}, "must be the id"), ({}, "must be the id"),
        ({"sighting": 2**64}, "must be the id"), ({"sighting": -1}, "must be the id"),
        ({"sighting": 1, "relabel": "yes"}, "true or false"),
        ({"sighting": 1, "x": 1}, "unknown"),
    ]:
        answer = as_admin.post(f"/api/v1/people/{person}/sightings", json=body)
        assert answer.status_code == 400, body
        assert words in answer.get_json()["error"], body


# -- merge, delete, export ---------------------------------------------------------------------

def test_merging_moves_samples_and_sightings_and_deletes_the_first(
        app: Flask, as_admin: FlaskClient, found: dict[str, face_engine.PhotoFace]) -> None:
    barack = new_person(as_admin, "Barack")["id"]
    obama = new_person(as_admin, "Obama", alert=True)["id"]
    assert upload(as_admin, barack, "obama.jpg").status_code == 201
    seen = add_sighting(app, "porch", T0, face=found["obama2.jpg"], person=barack, distance=0.4)
    assert as_admin.post(f"/api/v1/people/{barack}/merge", json={"into": barack}
                         ).status_code == 400
    assert as_admin.post(f"/api/v1/people/{barack}/merge", json={"into": 99}).status_code == 404
    assert as_admin.post(f"/api/v1/people/{barack}/merge", json={"into": "x"}).status_code == 400
    assert as_admin.post(f"/api/v1/people/{barack}/merge", json={"into": 2**70}
                         ).status_code == 400
    merged = as_admin.post(f"/api/v1/people/{barack}/merge", json={"into": obama})
    assert merged.status_code == 200
    body = merged.get_json()
    assert body["name"] == "Obama" and body["alert"] is True and len(body["samples"]) == 1
    assert body["last_seen"] == {"time": "2026-03-01T10:00:00.000Z", "camera": "porch"}
    assert sighting(app, seen).person_id == obama
    assert as_admin.get(f"/api/v1/people/{barack}").status_code == 404


def test_deleting_a_person_erases_their_sightings_and_keeps_others(
        app: Flask, as_admin: FlaskClient, found: dict[str, face_engine.PhotoFace]) -> None:
    obama = new_person(as_admin, "Obama")["id"]
    assert upload(as_admin, obama, "obama.jpg").status_code == 201
    theirs = add_sighting(app, "porch", T0, face=found["obama2.jpg"], person=obama,
                          distance=0.35)
    unknown = add_sighting(app, "porch", T0, face=found["biden.jpg"], key="unknown-1")
    assert as_admin.delete(f"/api/v1/people/{obama}").status_code == 204
    erased = sighting(app, theirs)
    assert erased.person_id is None and erased.embedding is None
    assert erased.distance is None and erased.erased_at is not None
    assert sighting(app, unknown).embedding is not None and sighting(app, unknown).erased_at \
        is None
    assert sample_count(app) == 0
    assert as_admin.get("/api/v1/people").get_json() == []
    # an erased sighting can be neither shown nor enrolled
    assert as_admin.get(f"/api/v1/events/face/{theirs}/crop.jpg").status_code == 404
    other = new_person(as_admin, "Other")["id"]
    assert as_admin.post(f"/api/v1/people/{other}/sightings",
                         json={"sighting": theirs}).status_code == 400


def test_the_export_holds_the_person_samples_sightings_and_crops(
        app: Flask, as_admin: FlaskClient, found: dict[str, face_engine.PhotoFace]) -> None:
    obama = new_person(as_admin, "Obama")["id"]
    sample = upload(as_admin, obama, "obama.jpg").get_json()
    add_sighting(app, "porch", T0, face=found["obama2.jpg"], person=obama, distance=0.36,
                 key="run1-f1")
    add_sighting(app, "yard", T0, face=found["obama3.jpg"], person=obama, distance=0.4,
                 key="run1-f2", crop_path=None)
    answer = as_admin.get(f"/api/v1/people/{obama}/export.zip")
    assert answer.status_code == 200 and answer.mimetype == "application/zip"
    assert "person_" in answer.headers["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(answer.data))
    assert sorted(archive.namelist()) == ["person.json", f"samples/{sample['id']}.jpg",
                                          "sightings/run1-f1.jpg"]
    document = json.loads(archive.read("person.json"))
    assert document["person"]["name"] == "Obama"
    assert len(document["samples"][0]["embedding"]) == 128
    assert [s["camera"] for s in document["sightings"]] == ["porch", "yard"]
    assert document["sightings"][0]["distance"] == 0.36
    assert len(document["sightings"][0]["embedding"]) == 128
    assert archive.read("sightings/run1-f1.jpg") == found["obama2.jpg"].crop
    assert not list((Path(app.config["STORAGE_ROOT"]) / ".exports").glob("export-*"))


# -- settings ----------------------------------------------------------------------------------

def test_face_settings_and_camera_switches_are_saved(app: Flask, as_admin: FlaskClient) -> None:
    add_camera(app, "porch")
    assert as_admin.get("/api/v1/faces/settings").get_json() == {
        "threshold": 0.6, "armed_hours": "", "armed_hours_by_camera": {}}
    saved = as_admin.put("/api/v1/faces/settings", json={
        "threshold": 0.5, "armed_hours": "22:00-6:00", "armed_hours_by_camera": {"porch": ""}})
    assert saved.status_code == 200
    assert saved.get_json()["threshold"] == 0.5 and saved.get_json()["armed_hours"] == \
        "22:00-06:00"
    with app.app_context():
        assert db.session.get(Setting, "faces.threshold").value == "0.500"
    switches = as_admin.put("/api/v1/cameras/porch/faces", json={"unknown_alerts": True})
    assert switches.status_code == 200
    assert switches.get_json() | {"seen_at": None} == {
        "camera": "porch", "enabled": True, "unknown_alerts": True, "seen_at": None,
        "active": False}
    assert as_admin.get("/api/v1/cameras/porch/faces").get_json()["unknown_alerts"] is True
    assert as_admin.get("/api/v1/cameras/nowhere/faces").status_code == 404


def test_bad_face_settings_are_400_naming_the_field(as_admin: FlaskClient) -> None:
    for body, field in [
        ({"threshold": 0.9}, "threshold"), ({"threshold": "0.5"}, "threshold"),
        ({"armed_hours": "25:00-01:00"}, "armed_hours"),
        ({"armed_hours_by_camera": {"x": ""}}, "armed_hours_by_camera"), ({"colour": 1}, "colour"),
    ]:
        answer = as_admin.put("/api/v1/faces/settings", json=body)
        assert answer.status_code == 400, body
        assert answer.get_json()["error"].startswith(field), body


# -- who may do what ---------------------------------------------------------------------------

def test_viewers_see_people_but_change_nothing(app: Flask, as_admin: FlaskClient,
                                               as_viewer: FlaskClient) -> None:
    person = new_person(as_admin, "Obama")["id"]
    sample = upload(as_admin, person, "obama.jpg").get_json()
    assert as_viewer.get("/api/v1/people").status_code == 200
    assert as_viewer.get(f"/api/v1/people/{person}").status_code == 200
    assert as_viewer.get(sample["crop"]).status_code == 200
    for method, path, kwargs in [
        ("post", "/api/v1/people", {"json": {"name": "Eve"}}),
        ("patch", f"/api/v1/people/{person}", {"json": {"name": "Eve"}}),
        ("delete", f"/api/v1/people/{person}", {}),
        ("post", f"/api/v1/people/{person}/photos", {"data": {}}),
        ("post", f"/api/v1/people/{person}/sightings", {"json": {"sighting": 1}}),
        ("post", f"/api/v1/people/{person}/merge", {"json": {"into": 1}}),
        ("delete", f"/api/v1/people/{person}/samples/{sample['id']}", {}),
        ("get", f"/api/v1/people/{person}/export.zip", {}),
        ("get", "/api/v1/faces/settings", {}), ("put", "/api/v1/faces/settings", {"json": {}}),
        ("get", "/api/v1/cameras/porch/faces", {}),
    ]:
        answer = getattr(as_viewer, method)(path, **kwargs)
        assert answer.status_code == 403, (method, path)
    assert as_admin.get(f"/api/v1/people/{person}").get_json()["name"] == "Obama"


# -- no input gives a 500 ----------------------------------------------------------------------

def fixed_person(client: FlaskClient) -> int:
    """The id of the person "Fixed", added if a merge or a delete took them away."""
    for person in client.get("/api/v1/people").get_json():
        if person["name"] == "Fixed":
            return int(person["id"])
    return int(new_person(client, "Fixed")["id"])


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=JSON | st.fixed_dictionaries({}, optional={"name": JSON, "alert": JSON,
                                                       "into": JSON, "sighting": JSON,
                                                       "relabel": JSON, "threshold": JSON}))
def test_no_json_body_makes_a_500(as_admin: FlaskClient, body: Any) -> None:
    person = fixed_person(as_admin)
    for method, path in [("post", "/api/v1/people"), ("patch", f"/api/v1/people/{person}"),
                         ("post", f"/api/v1/people/{person}/merge"),
                         ("post", f"/api/v1/people/{person}/sightings"),
                         ("put", "/api/v1/faces/settings"),
                         ("put", "/api/v1/cameras/porch/faces")]:
        answer = getattr(as_admin, method)(path, data=json.dumps(body),
                                           content_type="application/json")
        assert answer.status_code in (200, 201, 400, 404, 409), (path, answer.get_json())


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=st.dictionaries(st.sampled_from(["photo", "force", "other"]),
                              st.binary(max_size=64) | st.text(max_size=16), max_size=3))
def test_no_form_makes_a_500(as_admin: FlaskClient, fields: dict[str, Any]) -> None:
    person = fixed_person(as_admin)
    data = {key: FileStorage(io.BytesIO(value), "f.jpg") if isinstance(value, bytes) else value
            for key, value in fields.items()}
    answer = post_form(as_admin, f"/api/v1/people/{person}/photos", data)
    assert answer.status_code in (201, 400, 409), answer.get_json()
