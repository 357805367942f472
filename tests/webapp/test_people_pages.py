"""The People page's forms: add, rename, alert switch, merge, delete a sample and a person, name
an unknown face; viewers see the page without them and may post none."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from nvrlib import faces
from nvrlib.catalog.models import FaceSample, Person
from webapp.extensions import db

from .face_rows import blank_png, person_id, sighting
from .helpers import Account, csrf_token_of
from .test_api_cameras import app, as_admin, as_viewer, logged_in  # noqa: F401  (fixtures)
from .test_face_events import Face, add_sighting
from .test_people_api import post_form

T0 = dt.datetime(2026, 3, 1, 10, 0, tzinfo=dt.timezone.utc)


def add(client: FlaskClient, name: str) -> int:
    answer = client.post("/people/add", data={"name": name})
    assert answer.status_code == 302
    found = client.get("/api/v1/people").get_json()
    return next(p["id"] for p in found if p["name"] == name.strip())


def add_sample(app: Flask, person: int, seed: int) -> int:
    with app.app_context():
        sample = FaceSample(person_id=person, source="photo",
                            embedding=faces.embedding_to_bytes(Face(seed).embedding))
        db.session.add(sample)
        db.session.commit()
        return sample.id


def flashes(client: FlaskClient) -> str:
    return client.get("/people/").get_data(as_text=True)


def test_an_admin_adds_renames_switches_merges_and_deletes(app: Flask,
                                                           as_admin: FlaskClient) -> None:
    alice = add(as_admin, " Alice ")
    assert "Added Alice" in flashes(as_admin)
    as_admin.post("/people/add", data={"name": "alice"})
    assert "already a person called" in flashes(as_admin)
    as_admin.post(f"/people/{alice}/rename", data={"name": "Alicia"})
    as_admin.post(f"/people/{alice}/alert", data={"alert": "on"})
    page = flashes(as_admin)
    assert "Alerts for Alicia are on" in page and 'data-person="Alicia"' in page
    bob = add(as_admin, "Bob")
    sample = add_sample(app, alice, 1)
    as_admin.post(f"/people/{alice}/merge", data={"into": str(bob)})
    assert "Merged into Bob" in flashes(as_admin)
    with app.app_context():
        assert db.session.get(FaceSample, sample).person_id == bob
        assert db.session.get(Person, alice) is None
    as_admin.post(f"/people/{bob}/samples/{sample}/delete")
    assert "Sample deleted" in flashes(as_admin)
    as_admin.post(f"/people/{bob}/delete")
    page = flashes(as_admin)
    assert "Deleted Bob; 0 sightings erased" in page and "data-people-empty" in page


def test_uploads_say_what_happened_to_each_file(as_admin: FlaskClient) -> None:
    person = add(as_admin, "Someone")
    as_admin.post(f"/people/{person}/photos", data={
        "photo": [(io.BytesIO(blank_png()), "empty.png"), (io.BytesIO(b"x"), "junk.jpg")]},
        content_type="multipart/form-data")
    page = flashes(as_admin)
    assert "empty.png: photo: no face" in page and "junk.jpg: photo: the file is not" in page
    as_admin.post(f"/people/{person}/photos", data={}, content_type="multipart/form-data")
    assert "Choose one or more photos" in flashes(as_admin)


def test_naming_an_unknown_face_as_a_new_person(app: Flask, as_admin: FlaskClient) -> None:
    seen = add_sighting(app, "porch", T0, face=Face(7), key="page-1")
    page = flashes(as_admin)
    assert f'data-unknown-face="{seen}"' in page and f"/api/v1/events/face/{seen}/crop.jpg" in page
    as_admin.post(f"/people/sightings/{seen}/name", data={"person": "new", "name": "Carol",
                                                         "relabel": "on"})
    assert "Named this face Carol" in flashes(as_admin)
    assert sighting(app, seen).person_id == person_id(app, "Carol")
    # a refused face leaves no new person behind
    again = add_sighting(app, "porch", T0, face=Face(7), key="page-2")  # Carol's face
    as_admin.post(f"/people/sightings/{again}/name", data={"person": "new", "name": "Dave"})
    assert "looks like Carol (0.00)" in flashes(as_admin)
    assert person_id(app, "Dave") is None
    as_admin.post(f"/people/sightings/{again}/name", data={"person": "x"})
    assert "choose a person" in flashes(as_admin)


def test_viewers_see_the_page_but_no_forms_and_may_post_none(app: Flask, as_admin: FlaskClient,
                                                             as_viewer: FlaskClient) -> None:
    person = add(as_admin, "Alice")
    add_sighting(app, "porch", T0, face=Face(7), key="viewer-1")
    page = as_viewer.get("/people/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'data-person="Alice"' in html and "data-privacy-note" in html
    assert "Add person" not in html and "This is…" not in html and "<form" not in \
        html.split("<main")[1]
    for path in ["/people/add", f"/people/{person}/rename", f"/people/{person}/delete",
                 f"/people/{person}/photos", "/people/sightings/1/name"]:
        assert as_viewer.post(path, data={"name": "x"}).status_code == 403, path
    with app.app_context():
        assert db.session.scalar(select(Person.name)) == "Alice"


def test_a_phone_sized_photo_passes_the_csrf_check(make_app: Callable[..., Flask],
                                                   admin_user: Account) -> None:
    """A browser's upload (a session and its CSRF token) of a photo over the app's 1 MiB limit."""
    app = make_app(WTF_CSRF_ENABLED=True)
    client = logged_in(app, admin_user)
    token = csrf_token_of(client.get("/people/"))
    person = client.post("/api/v1/people", json={"name": "Big"}, headers={"X-CSRFToken": token})
    assert person.status_code == 201, person.get_data(as_text=True)[:300]
    large = blank_png() + b"\0" * (3 * 1024 * 1024)  # bytes after the PNG's end: ignored
    people = f"/people/{person.get_json()['id']}/photos"
    page = post_form(client, people, {"csrf_token": token,
                                      "photo": FileStorage(io.BytesIO(large), "large.png")})
    assert page.status_code == 302, page.get_data(as_text=True)[:300]
    assert "large.png: photo: no face" in flashes(client)
    boundary, body = encode_multipart({"photo": FileStorage(io.BytesIO(large), "large.png")})
    api = client.post(f"/api/v1{people}", data=body, headers={"X-CSRFToken": token},
                      content_type=f"multipart/form-data; boundary={boundary}")
    assert api.status_code == 400 and "no face" in api.get_json()["error"]
