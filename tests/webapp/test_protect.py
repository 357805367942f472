"""Recording locks: Protect buttons, the Protect form, the Locks page, indicators and the API.

A lock keeps retention away from the footage it overlaps; any user may lock one camera with a
reason (every camera needs an admin; the caps are in test_lock_limits.py), and a lock is removed
by an admin or by whoever made it. Catalog rows are written with the recorder's models.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from nvrlib.catalog.models import Camera, RecordingLock
from webapp.extensions import db
from webapp.models import User

from .helpers import Account, AuthActions, csrf_token_of
from .test_recordings_support import (  # noqa: F401  (catalog, viewer_client: fixtures)
    T0, CatalogWriter, at, catalog, iso, viewer_client,
)

UTC = dt.timezone.utc
LockRow = tuple[str | None, dt.datetime, dt.datetime, str, str]


def lock_rows(app: Flask) -> list[LockRow]:
    """Every lock in the catalog: (camera name or None, start, end, note, created_by)."""
    with app.app_context():
        rows = db.session.execute(
            select(Camera.name, RecordingLock.start_time, RecordingLock.end_time,
                   RecordingLock.note, RecordingLock.created_by)
            .outerjoin(Camera, Camera.id == RecordingLock.camera_id)
            .order_by(RecordingLock.id))
        return [tuple(row) for row in rows]  # type: ignore[misc]


def add_lock(app: Flask, camera: str | None, start: dt.datetime, end: dt.datetime,
             created_by: str = "someone", note: str = "") -> int:
    """Write a lock straight into the catalog; return its id."""
    with app.app_context():
        camera_id = (db.session.scalar(select(Camera.id).where(Camera.name == camera))
                     if camera is not None else None)
        lock = RecordingLock(camera_id=camera_id, start_time=start, end_time=end, note=note,
                             created_by=created_by, created_at=app.config["CLOCK"]())
        db.session.add(lock)
        db.session.commit()
        return lock.id


def login(app: Flask, account: Account) -> FlaskClient:
    """A new client of ``app`` logged in as ``account``."""
    client = app.test_client()
    AuthActions(client).login(account)
    return client


def html_of(client: FlaskClient, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return response.get_data(as_text=True)


def bearer(app: Flask, account: Account) -> dict[str, str]:
    """Give an account a fresh API token; return its Authorization header."""
    with app.app_context():
        token = db.session.get(User, account.id).new_api_token(app.config["CLOCK"]())
        db.session.commit()
    return {"Authorization": f"Bearer {token}"}


# -- Protect on the search results -------------------------------------------------------------

def test_protect_on_a_search_result_locks_exactly_that_recording_and_marks_it(
        app: Flask, viewer_client: FlaskClient, catalog: CatalogWriter) -> None:
    first = catalog.segment("porch", at(0), 10)
    second = catalog.segment("porch", at(10), 10)  # starts where the first ends
    html = html_of(viewer_client, "/recordings/?view=files&camera=porch")
    assert f'action="/protect/recordings/{first.id}"' in html
    assert html.count("data-protected") == 0

    refused = viewer_client.post(f"/protect/recordings/{first.id}",
                                 data={"next": "/recordings/?view=files&camera=porch"})
    assert refused.status_code == 400 and "say why" in refused.get_data(as_text=True)
    response = viewer_client.post(f"/protect/recordings/{first.id}",
                                  data={"next": "/recordings/?view=files&camera=porch", "note": "fox"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/recordings/?view=files&camera=porch"
    assert lock_rows(app) == [("porch", at(0), at(10), "fox", "victor")]

    html = html_of(viewer_client, "/recordings/?view=files&camera=porch")
    assert "Protected porch from 2026-03-01 10:00:00 UTC to 2026-03-01 10:00:10 UTC" in html
    assert html.count("data-protected") == 1  # the neighbour that only touches it is not
    assert f'action="/protect/recordings/{first.id}"' not in html
    assert f'action="/protect/recordings/{second.id}"' in html


def test_a_partial_or_every_camera_lock_marks_the_recordings_it_overlaps(
        app: Flask, viewer_client: FlaskClient, catalog: CatalogWriter) -> None:
    porch = [catalog.segment("porch", at(i * 10), 10) for i in range(3)]
    yard = catalog.segment("yard", at(100), 10)
    add_lock(app, "porch", at(15), at(16))  # inside porch's second recording
    add_lock(app, None, at(105), at(500))  # every camera
    html = html_of(viewer_client, "/recordings/?order=asc")
    protected = [int(m) for m in re.findall(r'action="/protect/recordings/(\d+)"', html)]
    assert sorted(protected) == [porch[0].id, porch[2].id]
    assert html.count("data-protected") == 2 and yard.id not in protected


def test_a_search_result_the_next_page_cannot_leave_the_site(
        app: Flask, viewer_client: FlaskClient, catalog: CatalogWriter) -> None:
    info = catalog.segment("porch", at(0), 10)
    response = viewer_client.post(f"/protect/recordings/{info.id}",
                                  data={"next": "https://evil.example/", "note": "why"})
    assert response.headers["Location"] == "/protect/"


def test_protecting_an_unknown_recording_is_404(viewer_client: FlaskClient) -> None:
    response = viewer_client.post("/protect/recordings/999", data={"note": "why"})
    assert response.status_code == 404
    assert "no recording with id 999" in response.get_data(as_text=True)


# -- the Protect form --------------------------------------------------------------------------

def test_the_form_locks_a_camera_range_read_in_the_users_time_zone(
        app: Flask, viewer_client: FlaskClient, catalog: CatalogWriter) -> None:
    catalog.camera("porch")
    html = html_of(viewer_client, "/protect/new")
    assert "All cameras" not in html  # admins only
    assert "js/recordings." in html  # it fills in the browser's time zone
    response = viewer_client.post("/protect/new", data={
        "camera": "porch", "start": "2026-03-01T11:00", "end": "2026-03-01T11:30:15",
        "tz": "Europe/Paris", "note": "  parcel stolen  "})
    assert response.status_code == 302 and response.headers["Location"] == "/protect/"
    # 11:00 in Paris is 10:00 UTC
    assert lock_rows(app) == [("porch", at(0), at(30 * 60 + 15), "parcel stolen", "victor")]


def test_the_form_locks_every_camera_for_an_admin(app: Flask, admin_user: Account,
                                                  catalog: CatalogWriter) -> None:
    catalog.camera("porch")
    admin = login(app, admin_user)
    assert '<option selected value="">All cameras (admins only)</option>' in html_of(
        admin, "/protect/new")
    response = admin.post("/protect/new", data={
        "camera": "", "start": "2026-03-01T10:00:00", "end": "2026-03-02T10:00:00",
        "note": "break-in"})
    assert response.status_code == 302
    assert lock_rows(app) == [(None, T0, T0 + dt.timedelta(days=1), "break-in",
                               admin_user.username)]
    assert "<em>All cameras</em>" in html_of(admin, "/protect/")


def test_a_link_prefills_the_form_with_the_range(viewer_client: FlaskClient,
                                                 catalog: CatalogWriter) -> None:
    catalog.camera("porch")
    html = html_of(viewer_client, f"/protect/new?camera=porch&start={iso(at(0))}"
                                  f"&end={iso(at(60))}")
    assert '<option selected value="porch">porch</option>' in html
    assert 'value="2026-03-01T10:00:00"' in html and 'value="2026-03-01T10:01:00"' in html
    assert 'data-iso="2026-03-01T10:00:00.000Z"' in html  # shown in local time by recordings.js


@pytest.mark.parametrize(("fields", "message"), [
    ({"end": "2026-03-01T09:00:00"}, "must be after start"),
    ({"end": "2026-03-01T10:00:00"}, "must be after start"),
    ({"end": "2027-03-03T10:00:00"}, "a lock covers at most 366 days"),
    ({"camera": "nobody"}, "no camera named &#39;nobody&#39;"),
    ({"note": "x" * 201}, "Field cannot be longer than 200 characters."),
    ({"note": "two\nlines"}, "one line of text"),
    ({"start": "noon"}, "not an ISO-8601 time: &#39;noon&#39;"),
    ({"start": ""}, "Give the start of the range."),
    ({"tz": "Mars/Olympus"}, "unknown time zone"),
    ({"note": "   "}, "Say why this footage must be kept."),
])
def test_the_form_refuses_bad_input_with_400_and_the_reason(
        app: Flask, viewer_client: FlaskClient, catalog: CatalogWriter,
        fields: dict[str, str], message: str) -> None:
    catalog.camera("porch")
    data = {"camera": "porch", "start": "2026-03-01T10:00:00", "end": "2026-03-01T11:00:00",
            "tz": "UTC", "note": "theft", **fields}
    response = viewer_client.post("/protect/new", data=data)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert 'class="invalid-feedback"' in response.get_data(as_text=True)
    assert lock_rows(app) == []


def test_forms_need_the_csrf_token(make_app: Callable[..., Flask], viewer_user: Account) -> None:
    app = make_app(WTF_CSRF_ENABLED=True)
    CatalogWriter(app).camera("porch")
    client = login(app, viewer_user)
    data = {"camera": "porch", "start": "2026-03-01T10:00", "end": "2026-03-01T11:00",
            "note": "theft"}
    assert client.post("/protect/new", data=data).status_code == 400
    assert lock_rows(app) == []
    token = csrf_token_of(client.get("/protect/new"))
    assert client.post("/protect/new", data={**data, "csrf_token": token}).status_code == 302
    [(_, _, _, _, who)] = lock_rows(app)
    [lock_id] = re.findall(r'action="/protect/(\d+)/remove"', html_of(client, "/protect/"))
    assert client.post(f"/protect/{lock_id}/remove").status_code == 400
    assert len(lock_rows(app)) == 1 and who == "victor"


# -- the player and the timeline ---------------------------------------------------------------

def test_the_player_page_protects_the_range_it_shows(app: Flask, viewer_client: FlaskClient,
                                                     catalog: CatalogWriter) -> None:
    catalog.segment("porch", at(0), 10)
    url = f"/recordings/play?camera=porch&start={iso(at(2))}&end={iso(at(8))}"
    html = html_of(viewer_client, url)
    form = html.split("data-protect-range", 1)[1].split("</form>", 1)[0]
    fields = dict(re.findall(r'name="(\w+)"[^>]*?value="([^"]*)"', form))
    assert fields["camera"] == "porch"
    assert (fields["start"], fields["end"]) == ("2026-03-01T10:00:02", "2026-03-01T10:00:08")
    fields["next"] = fields["next"].replace("&amp;", "&")
    assert 'name="note" maxlength="200" required' in form
    response = viewer_client.post("/protect/new", data={**fields, "note": "fox"})
    assert response.status_code == 302 and response.headers["Location"] == url
    assert lock_rows(app) == [("porch", at(2), at(8), "fox", "victor")]


def test_the_timeline_marks_the_protected_stretches_of_the_day(
        app: Flask, viewer_client: FlaskClient, catalog: CatalogWriter) -> None:
    catalog.segment("porch", at(0), 10)
    add_lock(app, "porch", at(0), at(600))
    add_lock(app, None, T0 - dt.timedelta(days=3), T0 - dt.timedelta(hours=9))  # 01:00 UTC
    catalog.camera("yard")
    add_lock(app, "yard", at(0), at(3600))  # another camera's: not shown
    html = html_of(viewer_client, "/recordings/timeline/porch?day=2026-03-01&tz=UTC")
    svg = html.split("<svg", 1)[1].split("</svg>", 1)[0]
    bars = re.findall(r'<rect class="nvr-timeline-locked" x="([\d.]+)" y="0" width="([\d.]+)"', svg)
    assert bars == [("0.0", "3600.0"), ("36000.0", "600.0")]  # clipped to the day
    assert 'href="/protect/?camera=porch"' in html


def test_a_day_without_locks_draws_none(viewer_client: FlaskClient,
                                        catalog: CatalogWriter) -> None:
    catalog.segment("porch", at(0), 10)
    html = html_of(viewer_client, "/recordings/timeline/porch?day=2026-03-01&tz=UTC")
    assert "nvr-timeline-locked" not in html


# -- the Locks page and Remove -----------------------------------------------------------------

def test_the_locks_page_lists_camera_range_note_who_and_when(
        app: Flask, viewer_client: FlaskClient, catalog: CatalogWriter) -> None:
    catalog.camera("porch")
    add_lock(app, "porch", at(0), at(90), created_by="alice", note="<b>parcel</b>")
    html = html_of(viewer_client, "/protect/")
    assert 'href="/protect/"' in html_of(viewer_client, "/")  # in the navbar for viewers
    row = html.split("data-lock-id=", 1)[1].split("</tr>", 1)[0]
    assert "porch" in row and "alice" in row and "&lt;b&gt;parcel&lt;/b&gt;" in row
    assert "2026-03-01 10:00:00 UTC" in row and "2026-03-01 10:01:30 UTC" in row
    assert "1 min 30 s" in row and "2026-03-01 12:00:00 UTC" in row  # made "now"
    assert "/recordings/play?camera=porch" in row
    assert "/remove" not in row  # victor did not make it


def test_the_locks_page_filters_by_camera_and_pages(
        app: Flask, viewer_client: FlaskClient, catalog: CatalogWriter) -> None:
    catalog.camera("porch")
    catalog.camera("yard")
    for index in range(51):
        add_lock(app, "porch", at(index), at(index + 1))
    add_lock(app, "yard", at(0), at(1))
    add_lock(app, None, at(0), at(1))
    yard = html_of(viewer_client, "/protect/?camera=yard")
    assert yard.count("data-lock-id=") == 2  # its own and the every-camera lock
    first = html_of(viewer_client, "/protect/?camera=porch")
    assert first.count("data-lock-id=") == 50 and "page=2" in first
    assert html_of(viewer_client, "/protect/?camera=porch&page=2").count("data-lock-id=") == 2
    assert viewer_client.get("/protect/?camera=nobody").status_code == 404


def test_the_maker_removes_their_own_lock(app: Flask, viewer_client: FlaskClient,
                                          catalog: CatalogWriter) -> None:
    catalog.camera("porch")
    lock_id = add_lock(app, "porch", at(0), at(10), created_by="victor")
    assert f'action="/protect/{lock_id}/remove"' in html_of(viewer_client, "/protect/")
    response = viewer_client.post(f"/protect/{lock_id}/remove", data={"next": "/protect/"})
    assert response.status_code == 302
    assert lock_rows(app) == []
    assert "Removed the lock on porch" in html_of(viewer_client, "/protect/")


def test_only_admins_remove_other_users_locks(app: Flask, viewer_client: FlaskClient,
                                              admin_user: Account,
                                              catalog: CatalogWriter) -> None:
    catalog.camera("porch")
    lock_id = add_lock(app, "porch", at(0), at(10), created_by="someone")
    response = viewer_client.post(f"/protect/{lock_id}/remove", data={})
    assert response.status_code == 403
    assert len(lock_rows(app)) == 1
    admin = login(app, admin_user)
    assert f'action="/protect/{lock_id}/remove"' in html_of(admin, "/protect/")
    assert admin.post(f"/protect/{lock_id}/remove", data={}).status_code == 302
    assert lock_rows(app) == []
    assert admin.post(f"/protect/{lock_id}/remove", data={}).status_code == 404


# -- the JSON API ------------------------------------------------------------------------------

def test_api_creates_lists_and_deletes_locks(app: Flask, viewer_client: FlaskClient,
                                             catalog: CatalogWriter) -> None:
    catalog.camera("porch")
    catalog.camera("yard")
    created = viewer_client.post("/api/v1/locks", json={
        "camera": "porch", "start": "2026-03-01T11:00:00", "end": "2026-03-01T12:00:00+01:00",
        "tz": "Europe/Paris", "note": "theft"})
    assert created.status_code == 201
    lock = created.get_json()
    assert lock == {"id": lock["id"], "camera": "porch", "start": "2026-03-01T10:00:00.000Z",
                    "end": "2026-03-01T11:00:00.000Z", "note": "theft", "created_by": "victor",
                    "created_at": "2026-03-01T12:00:00.000Z", "admin": False,
                    "yielded_at": None, "original_start": None}
    assert created.headers["Location"] == f"/api/v1/locks/{lock['id']}"
    every_id = add_lock(app, None, T0 - dt.timedelta(days=28), T0 - dt.timedelta(days=27))
    every = viewer_client.get(f"/api/v1/locks/{every_id}")
    assert every.get_json()["camera"] is None

    assert [x["id"] for x in viewer_client.get("/api/v1/locks").get_json()] == [
        lock["id"], every.get_json()["id"]]
    assert len(viewer_client.get("/api/v1/locks?camera=yard").get_json()) == 1  # every camera
    ranged = viewer_client.get("/api/v1/locks?start=2026-03-01T10:30:00Z").get_json()
    assert [x["id"] for x in ranged] == [lock["id"]]
    assert viewer_client.get(f"/api/v1/locks/{lock['id']}").get_json() == lock

    deleted = viewer_client.delete(f"/api/v1/locks/{lock['id']}")
    assert deleted.status_code == 204
    assert viewer_client.get(f"/api/v1/locks/{lock['id']}").status_code == 404
    assert len(lock_rows(app)) == 1


def test_api_locks_one_recording_by_id(app: Flask, viewer_client: FlaskClient,
                                       catalog: CatalogWriter) -> None:
    info = catalog.segment("porch", at(20), 10)
    unexplained = viewer_client.post("/api/v1/locks", json={"recording": info.id})
    assert unexplained.status_code == 400
    assert unexplained.get_json()["error"].startswith("note: say why")
    created = viewer_client.post("/api/v1/locks", json={"recording": info.id, "note": "n"})
    assert created.status_code == 201
    assert lock_rows(app) == [("porch", at(20), at(30), "n", "victor")]
    missing = viewer_client.post("/api/v1/locks", json={"recording": 999, "note": "n"})
    assert missing.status_code == 404


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"camera": "porch", "start": "2026-03-01T10:00:00Z", "end": "2026-03-01T09:00:00Z"},
     400, "end: must be after start"),
    ({"camera": "porch", "start": "2026-03-01T10:00:00Z", "end": "2027-03-03T10:00:00Z"},
     400, "end: a lock covers at most 366 days"),
    ({"camera": "nobody", "start": "2026-03-01T10:00:00Z", "end": "2026-03-01T11:00:00Z",
      "note": "theft"}, 404, "camera: no camera named 'nobody'"),
    ({"camera": "porch", "start": "2026-03-01T10:00:00Z", "end": "2026-03-01T11:00:00Z"},
     400, "note: say why this footage must be kept"),
    ({"camera": "porch", "start": "2026-03-01T10:00:00Z", "end": "2026-03-01T11:00:00Z",
      "note": "x" * 201}, 400, "note: at most 200 characters"),
    ({"start": "2026-03-01T10:00:00Z", "end": "2026-03-01T11:00:00Z"}, 400, "camera: required"),
    ({"camera": "porch", "start": "noon", "end": "2026-03-01T11:00:00Z"}, 400,
     "start: not an ISO-8601 time"),
    ({"camera": "porch", "start": 5, "end": "2026-03-01T11:00:00Z"}, 400,
     "start: must be a string"),
    ({"camera": "porch", "start": "2026-03-01T10:00:00Z", "end": "2026-03-01T11:00:00Z",
      "owner": "me"}, 400, "owner: unknown field"),
    ({"recording": "1"}, 400, "recording: must be a recording's id"),
    ({"recording": 1, "camera": "porch"}, 400, "camera: not allowed with recording"),
])
def test_api_refuses_bad_locks_naming_the_field(app: Flask, viewer_client: FlaskClient,
                                                catalog: CatalogWriter, body: dict[str, object],
                                                status: int, message: str) -> None:
    catalog.camera("porch")
    response = viewer_client.post("/api/v1/locks", json=body)
    assert response.status_code == status
    assert response.get_json()["error"].startswith(message)
    assert lock_rows(app) == []


def test_api_refuses_a_body_that_is_not_a_json_object(viewer_client: FlaskClient) -> None:
    response = viewer_client.post("/api/v1/locks", data="camera=porch")
    assert response.status_code == 400 and "JSON object" in response.get_json()["error"]


def test_api_list_refuses_unknown_parameters_and_cameras(viewer_client: FlaskClient) -> None:
    assert viewer_client.get("/api/v1/locks?from=2026-03-01").get_json() == {
        "error": "from: unknown parameter"}
    assert viewer_client.get("/api/v1/locks?camera=nobody").status_code == 404


def test_api_pages_with_a_link_header(app: Flask, viewer_client: FlaskClient,
                                      catalog: CatalogWriter) -> None:
    catalog.camera("porch")
    for index in range(3):
        add_lock(app, "porch", at(index), at(index + 1))
    response = viewer_client.get("/api/v1/locks?limit=2")
    assert len(response.get_json()) == 2
    assert response.headers["Link"] == '</api/v1/locks?limit=2&offset=2>; rel="next"'
    assert "Link" not in viewer_client.get("/api/v1/locks?limit=2&offset=2").headers


def test_api_delete_is_for_the_maker_or_an_admin(app: Flask, viewer_user: Account,
                                                 admin_user: Account,
                                                 make_user: Callable[..., Account],
                                                 catalog: CatalogWriter) -> None:
    catalog.camera("porch")
    other = make_user("olga", "olga-password-123")
    client = app.test_client()
    created = client.post("/api/v1/locks", headers=bearer(app, viewer_user), json={
        "camera": "porch", "start": "2026-03-01T10:00:00Z", "end": "2026-03-01T11:00:00Z",
        "note": "theft"})
    assert created.status_code == 201  # a token needs no CSRF token
    lock_id = created.get_json()["id"]
    refused = client.delete(f"/api/v1/locks/{lock_id}", headers=bearer(app, other))
    assert refused.status_code == 403 and "only they or an admin" in refused.get_json()["error"]
    assert client.delete(f"/api/v1/locks/{lock_id}",
                         headers=bearer(app, admin_user)).status_code == 204
    assert client.delete(f"/api/v1/locks/{lock_id}",
                         headers=bearer(app, admin_user)).status_code == 404


def test_anonymous_users_can_neither_see_nor_make_locks(app: Flask,
                                                        catalog: CatalogWriter) -> None:
    catalog.camera("porch")
    client = app.test_client()
    assert client.get("/api/v1/locks").status_code == 401
    assert client.post("/api/v1/locks", json={"camera": None}).status_code == 401
    assert client.get("/protect/").status_code == 302
    assert lock_rows(app) == []
