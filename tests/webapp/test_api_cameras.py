"""The cameras API: status for every user, control for admins, through the catalog.

The helpers at the top (catalog seeding, a stand-in for the hub's side of the control channel,
logged-in clients) are shared with test_admin.py and test_live.py.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from nvrlib.catalog.db import make_engine
from nvrlib.catalog.models import Camera, CameraStatus, Command, Segment
from recorder import control as hub_control
from recorder.store.catalog import Catalog
from recorder.store.storage import Storage
from webapp import cameras_service
from webapp.extensions import db
from webapp.models import User

from .helpers import Account, AuthActions, FakeClock, csrf_token_of

PASSWORD = "s3cret-Pa55"
PULL_URL = f"rtsp://admin:{PASSWORD}@192.0.2.10:554/stream1"

# -- shared helpers ----------------------------------------------------------------------------


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """The app, waiting at most 1 s for the hub's answer (the stand-in answers in ~20 ms)."""
    return make_app(CAMERA_COMMAND_TIMEOUT=1.0)


def add_camera(app: Flask, name: str, *, location: str = "", kind: str = "push",
               enabled: bool = True, approval: str = "approved", url: str | None = None,
               **status: Any) -> None:
    """Put a camera in the catalog; keyword arguments make its status row (fresh by default)."""
    with app.app_context():
        camera = Camera(name=name, location=location, kind=kind, enabled=enabled,
                        approval=approval, url=url)
        db.session.add(camera)
        db.session.flush()
        if status:
            row = {"state": "running", "online": True, "kind": kind,
                   "updated_at": app.config["CLOCK"](), **status}
            db.session.add(CameraStatus(camera_id=camera.id, **row))
        db.session.commit()


def add_segment(app: Flask, camera: str, end: dt.datetime) -> None:
    """Catalog one 2-second segment of a camera, ending at ``end``."""
    with app.app_context():
        camera_id = db.session.scalar(select(Camera.id).where(Camera.name == camera))
        db.session.add(Segment(camera_id=camera_id, start_time=end - dt.timedelta(seconds=2),
                               end_time=end, duration=2.0, size_bytes=1000,
                               path=f"{camera}/{end:%Y%m%dT%H%M%S%f}.ts"))
        db.session.commit()


def camera_row(app: Flask, name: str) -> Camera | None:
    """Return a fresh copy of a camera's row."""
    with app.app_context():
        camera = db.session.scalar(select(Camera).where(Camera.name == name))
        if camera is not None:
            db.session.expunge(camera)
        return camera


def commands(app: Flask) -> list[tuple[str, str, str]]:
    """Every command sent so far: (camera, action, requested_by)."""
    with app.app_context():
        return [(c.camera, c.action, c.requested_by)
                for c in db.session.scalars(select(Command).order_by(Command.id))]


class FakeHub:
    """The hub's side of the control channel, with the hub's own functions, minus the hub."""

    def __init__(self, app: Flask, answer: Callable[[Command], str] | None = None) -> None:
        self.engine = make_engine(app.config["SQLALCHEMY_DATABASE_URI"])
        self.catalog = Catalog(self.engine, Storage(Path(app.config["STORAGE_ROOT"])))
        self.answer = answer or (lambda command: f"ok: {command.action} {command.camera}")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fake-hub", daemon=True)

    def _serve(self) -> None:
        while not self._stop.wait(0.01):
            for command in hub_control.take_commands(self.catalog):
                hub_control.finish_command(self.catalog, command.id, self.answer(command))

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.engine.dispose()


@pytest.fixture
def hub(app: Flask) -> Iterator[FakeHub]:
    """A stand-in hub answering every command "ok: <action> <camera>"."""
    with FakeHub(app) as fake:
        yield fake


def logged_in(app: Flask, account: Account) -> FlaskClient:
    """A new client of ``app`` with ``account`` logged in."""
    client = app.test_client()
    AuthActions(client).login(account)
    return client


@pytest.fixture
def as_admin(app: Flask, admin_user: Account) -> FlaskClient:
    """A client logged in as an admin."""
    return logged_in(app, admin_user)


@pytest.fixture
def as_viewer(app: Flask, viewer_user: Account) -> FlaskClient:
    """A client logged in as a viewer."""
    return logged_in(app, viewer_user)


def token_of(app: Flask, account: Account) -> dict[str, str]:
    """Give an account a fresh API token; return its Authorization header."""
    with app.app_context():
        token = db.session.get(User, account.id).new_api_token(app.config["CLOCK"]())
        db.session.commit()
    return {"Authorization": f"Bearer {token}"}


def iso(value: dt.datetime) -> str:
    """A time as the API writes it: UTC, milliseconds, a Z."""
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{value.microsecond // 1000:03d}Z"


# -- GET /api/v1/cameras -----------------------------------------------------------------------

def test_the_list_shows_each_camera_with_its_live_status(app: Flask, as_viewer: FlaskClient,
                                                         clock: FakeClock) -> None:
    since = clock.now - dt.timedelta(minutes=5)
    add_camera(app, "porch", location="Front door", connected_since=since, fps=25.0,
               bitrate_bps=2_000_000, restarts=2, peer="192.0.2.7:50000",
               last_segment_end=clock.now - dt.timedelta(seconds=4))
    response = as_viewer.get("/api/v1/cameras")
    assert response.status_code == 200
    [porch] = response.get_json()
    assert porch == {
        "name": "porch", "location": "Front door", "kind": "push", "enabled": True,
        "approval": "approved", "state": "running", "online": True, "stale": False,
        "connected_since": "2026-03-01T11:55:00.000Z", "offline_since": None, "uptime": 300.0,
        "fps": 25.0, "bitrate": 2_000_000, "restarts": 2,
        "last_segment_end": "2026-03-01T11:59:56.000Z", "hub": "main",
        "faces": {"enabled": True, "active": False, "seen_at": None},
    }


def test_admins_also_see_the_edge_address(app: Flask, as_admin: FlaskClient) -> None:
    add_camera(app, "porch", peer="192.0.2.7:50000")
    [porch] = as_admin.get("/api/v1/cameras").get_json()
    assert porch["peer"] == "192.0.2.7:50000" and porch["editable"] is False


def test_a_status_the_hub_stopped_refreshing_reads_offline_state_unknown(
        app: Flask, as_viewer: FlaskClient, clock: FakeClock) -> None:
    last_heard = clock.now - dt.timedelta(seconds=11)
    add_camera(app, "porch", updated_at=last_heard, connected_since=last_heard, fps=25.0)
    [porch] = as_viewer.get("/api/v1/cameras").get_json()
    assert porch["online"] is False and porch["state"] == "unknown" and porch["stale"] is True
    assert porch["offline_since"] == iso(last_heard) and porch["fps"] == 0.0


def test_a_stopped_camera_stays_stopped_however_old_its_row(app: Flask, as_viewer: FlaskClient,
                                                            clock: FakeClock) -> None:
    # the hub rewrites a stopped camera's row only when something changes
    gone = clock.now - dt.timedelta(hours=3)
    add_camera(app, "porch", state="stopped", online=False, offline_since=gone, updated_at=gone)
    [porch] = as_viewer.get("/api/v1/cameras").get_json()
    assert (porch["state"], porch["online"], porch["stale"]) == ("stopped", False, False)
    assert porch["offline_since"] == iso(gone) == "2026-03-01T09:00:00.000Z"


def test_a_camera_the_hub_never_reported_is_unknown_with_its_newest_segment(
        app: Flask, as_viewer: FlaskClient, clock: FakeClock) -> None:
    add_camera(app, "porch")
    add_segment(app, "porch", clock.now - dt.timedelta(days=1))
    add_segment(app, "porch", clock.now - dt.timedelta(days=2))
    [porch] = as_viewer.get("/api/v1/cameras").get_json()
    assert porch["state"] == "unknown" and porch["online"] is False
    assert porch["last_segment_end"] == iso(clock.now - dt.timedelta(days=1))


def test_one_camera_by_name(app: Flask, as_viewer: FlaskClient) -> None:
    add_camera(app, "porch")
    assert as_viewer.get("/api/v1/cameras/porch").get_json()["name"] == "porch"
    missing = as_viewer.get("/api/v1/cameras/nobody")
    assert missing.status_code == 404 and "nobody" in missing.get_json()["error"]


def test_pull_camera_credentials_never_leave_the_server(app: Flask, as_admin: FlaskClient) -> None:
    add_camera(app, "garden", kind="pull", url=PULL_URL + "?password=also-secret",
               peer="rtsp://***@192.0.2.10:554/stream1")
    body = as_admin.get("/api/v1/cameras").get_data(as_text=True)
    assert PASSWORD not in body and "also-secret" not in body and "admin:" not in body
    [garden] = as_admin.get("/api/v1/cameras").get_json()
    assert garden["source"] == "rtsp://***@192.0.2.10:554/stream1?password=***"
    assert garden["editable"] is True


# -- permissions -------------------------------------------------------------------------------

CONTROL_CALLS = [
    ("POST", "/api/v1/cameras/porch/restart", None),
    ("POST", "/api/v1/cameras/porch/disconnect", None),
    ("POST", "/api/v1/cameras/porch/disable", None),
    ("POST", "/api/v1/cameras", {"name": "garden", "url": "rtsp://192.0.2.10/"}),
    ("PATCH", "/api/v1/cameras/porch", {"location": "x"}),
    ("DELETE", "/api/v1/cameras/porch", None),
    ("GET", "/api/v1/commands/1", None),
]


@pytest.mark.parametrize(("method", "url", "body"), CONTROL_CALLS)
def test_anonymous_control_calls_get_401(app: Flask, method: str, url: str, body: Any) -> None:
    add_camera(app, "porch")
    response = app.test_client().open(url, method=method, json=body)
    assert response.status_code == 401 and "error" in response.get_json()
    assert commands(app) == []


@pytest.mark.parametrize(("method", "url", "body"), CONTROL_CALLS)
def test_viewers_get_403_on_control_calls(app: Flask, as_viewer: FlaskClient, method: str,
                                          url: str, body: Any) -> None:
    add_camera(app, "porch")
    response = as_viewer.open(url, method=method, json=body)
    assert response.status_code == 403
    assert response.get_json() == {"error": "This needs an admin account."}
    assert commands(app) == []


def test_viewers_may_read_the_list(app: Flask, as_viewer: FlaskClient,
                                   viewer_user: Account) -> None:
    assert as_viewer.get("/api/v1/cameras").status_code == 200
    by_token = app.test_client().get("/api/v1/cameras", headers=token_of(app, viewer_user))
    assert by_token.status_code == 200


# -- control -----------------------------------------------------------------------------------

def test_restart_reaches_the_hub_and_returns_its_answer(app: Flask, as_admin: FlaskClient,
                                                        hub: FakeHub) -> None:
    add_camera(app, "porch")
    response = as_admin.post("/api/v1/cameras/porch/restart")
    assert response.status_code == 200
    body = response.get_json()
    assert body == {"command": body["command"], "camera": "porch", "action": "restart",
                    "done": True, "ok": True, "result": "ok: restart porch"}
    assert commands(app) == [("porch", "restart", "alice")]


def test_without_an_answer_in_time_the_call_says_202_and_can_be_asked_later(
        app: Flask, as_admin: FlaskClient) -> None:
    add_camera(app, "porch")
    response = as_admin.post("/api/v1/cameras/porch/disconnect")
    assert response.status_code == 202
    body = response.get_json()
    assert body["done"] is False and body["result"] is None and body["ok"] is None
    later = f"/api/v1/commands/{body['command']}"
    assert as_admin.get(later).get_json()["done"] is False
    with FakeHub(app):
        answered = cameras_service_wait(app, body["command"])
    assert answered == "ok: disconnect porch"
    assert as_admin.get(later).get_json() == {
        "command": body["command"], "camera": "porch", "action": "disconnect", "done": True,
        "ok": True, "result": "ok: disconnect porch"}


def cameras_service_wait(app: Flask, command_id: int) -> str | None:
    with app.app_context():
        return cameras_service.wait_for_result(command_id, timeout=5)


def test_a_failed_hub_answer_is_reported_as_not_ok(app: Flask, as_admin: FlaskClient) -> None:
    add_camera(app, "porch")
    with FakeHub(app, answer=lambda command: "not streaming"):
        body = as_admin.post("/api/v1/cameras/porch/restart").get_json()
    assert body["ok"] is False and body["result"] == "not streaming"


def test_unknown_command_is_404(as_admin: FlaskClient) -> None:
    assert as_admin.get("/api/v1/commands/999").status_code == 404


@pytest.mark.parametrize(("camera", "action", "status", "message"), [
    ("nobody", "restart", 404, "no camera named 'nobody'"),
    ("porch", "explode", 400, "unknown action 'explode'"),
    ("nobody", "explode", 400, "unknown action 'explode'"),
    ("garden", "disconnect", 400, "garden is pulled by the hub"),
    ("off", "restart", 400, "off is disabled"),
    ("banned", "enable", 400, "banned was rejected; approve it first"),
    ("porch", "approve", 400, "porch is approved already"),
    ("porch", "reject", 400, "only a camera awaiting approval can be rejected"),
])
def test_an_action_is_checked_against_the_camera_it_names(
        app: Flask, as_admin: FlaskClient, camera: str, action: str, status: int,
        message: str) -> None:
    add_camera(app, "porch")
    add_camera(app, "garden", kind="pull", url=PULL_URL)
    add_camera(app, "off", enabled=False)
    add_camera(app, "banned", enabled=False, approval="rejected")
    response = as_admin.post(f"/api/v1/cameras/{camera}/{action}")
    assert response.status_code == status
    assert message in response.get_json()["error"]
    assert commands(app) == []


def test_disable_and_enable_set_the_flag_and_tell_the_hub(app: Flask, as_admin: FlaskClient,
                                                          hub: FakeHub) -> None:
    add_camera(app, "porch")
    assert as_admin.post("/api/v1/cameras/porch/disable").status_code == 200
    assert camera_row(app, "porch").enabled is False
    assert as_admin.post("/api/v1/cameras/porch/enable").status_code == 200
    assert camera_row(app, "porch").enabled is True
    assert [c[1] for c in commands(app)] == ["disable", "enable"]


def test_approve_and_reject_a_new_camera(app: Flask, as_admin: FlaskClient, hub: FakeHub) -> None:
    add_camera(app, "stranger", approval="pending")
    add_camera(app, "friend", approval="pending")
    rejected = as_admin.post("/api/v1/cameras/stranger/reject").get_json()
    assert rejected["action"] == "reject" and rejected["ok"] is True
    row = camera_row(app, "stranger")
    assert (row.approval, row.enabled) == ("rejected", False)
    as_admin.post("/api/v1/cameras/friend/approve")
    row = camera_row(app, "friend")
    assert (row.approval, row.enabled) == ("approved", True)
    # a rejected camera can still be approved (a mistake undone)
    assert as_admin.post("/api/v1/cameras/stranger/approve").status_code == 200
    assert camera_row(app, "stranger").approval == "approved"
    assert [c[:2] for c in commands(app)] == [
        ("stranger", "disable"), ("friend", "enable"), ("stranger", "enable")]


def test_bearer_posts_need_no_csrf_but_session_posts_need_the_header(
        make_app: Callable[..., Flask], admin_user: Account) -> None:
    app = make_app(WTF_CSRF_ENABLED=True, CAMERA_COMMAND_TIMEOUT=0)
    add_camera(app, "porch")
    assert app.test_client().post("/api/v1/cameras/porch/restart",
                                  headers=token_of(app, admin_user)).status_code == 202
    session = logged_in(app, admin_user)
    refused = session.post("/api/v1/cameras/porch/restart")
    assert refused.status_code == 400 and "CSRF" in refused.get_json()["error"]
    token = csrf_token_of(session.get("/"))
    accepted = session.post("/api/v1/cameras/porch/restart", headers={"X-CSRFToken": token})
    assert accepted.status_code == 202
    assert [c[1] for c in commands(app)] == ["restart", "restart"]


# -- pull cameras ------------------------------------------------------------------------------

def test_add_a_pull_camera_then_the_hub_reloads(app: Flask, as_admin: FlaskClient,
                                                hub: FakeHub) -> None:
    response = as_admin.post("/api/v1/cameras", json={"name": "garden", "location": "Back",
                                                     "url": PULL_URL})
    assert response.status_code == 201
    body = response.get_json()
    assert body["result"] == "ok: reload garden" and body["camera"]["name"] == "garden"
    assert PASSWORD not in response.get_data(as_text=True)
    row = camera_row(app, "garden")
    assert (row.kind, row.url, row.location, row.enabled, row.approval) == (
        "pull", PULL_URL, "Back", True, "approved")
    assert commands(app) == [("garden", "reload", "alice")]


@pytest.mark.parametrize(("body", "message"), [
    ({"name": "garden", "url": "http://192.0.2.10/stream"}, "only rtsp:// and rtsps://"),
    ({"name": "garden", "url": "rtsp:///stream"}, "no host"),
    ({"name": "garden", "url": "rtsp://cam/a b"}, "spaces"),
    ({"name": "garden", "url": "rtsp://cam:99999/"}, "malformed"),
    ({"name": "garden", "url": ""}, "missing"),
    ({"name": "garden", "url": "rtsp://cam/" + "x" * 1100}, "longer than"),
    ({"name": "garden"}, "'url' must be a string"),
    ({"name": "../etc", "url": "rtsp://cam/"}, "camera name"),
    ({"name": "a b", "url": "rtsp://cam/"}, "camera name"),
    ({"name": "", "url": "rtsp://cam/"}, "camera name is empty"),
    ({"name": "garden", "url": "rtsp://cam/", "location": "x" * 200}, "location is longer"),
    ({"name": "garden", "url": "rtsp://cam/", "location": "a\nb"}, "control characters"),
    ({"name": 5, "url": "rtsp://cam/"}, "'name' must be a string"),
])
def test_a_bad_pull_camera_is_refused_with_a_reason(app: Flask, as_admin: FlaskClient,
                                                    body: dict[str, Any], message: str) -> None:
    response = as_admin.post("/api/v1/cameras", json=body)
    assert response.status_code == 400
    assert message in response.get_json()["error"]
    assert camera_row(app, "garden") is None and commands(app) == []


def test_adding_needs_a_json_object(as_admin: FlaskClient) -> None:
    response = as_admin.post("/api/v1/cameras", data="name=garden")
    assert response.status_code == 400 and "JSON object" in response.get_json()["error"]
    assert as_admin.post("/api/v1/cameras", json=["garden"]).status_code == 400


def test_a_taken_name_is_409(app: Flask, as_admin: FlaskClient) -> None:
    add_camera(app, "porch")
    response = as_admin.post("/api/v1/cameras", json={"name": "porch", "url": "rtsp://cam/"})
    assert response.status_code == 409 and "exists already" in response.get_json()["error"]
    assert camera_row(app, "porch").url is None


def test_edit_a_pull_camera(app: Flask, as_admin: FlaskClient, hub: FakeHub) -> None:
    add_camera(app, "garden", kind="pull", url=PULL_URL, location="Back")
    response = as_admin.patch("/api/v1/cameras/garden", json={"location": "Shed"})
    assert response.status_code == 200
    assert (camera_row(app, "garden").location, camera_row(app, "garden").url) == ("Shed", PULL_URL)
    as_admin.patch("/api/v1/cameras/garden", json={"url": "rtsps://192.0.2.11/main"})
    assert camera_row(app, "garden").url == "rtsps://192.0.2.11/main"
    assert [c[1] for c in commands(app)] == ["reload", "reload"]


@pytest.mark.parametrize(("camera", "body", "status", "message"), [
    ("nobody", {"location": "x"}, 404, "no camera named"),
    ("porch", {"location": "x"}, 400, "not added here as a pull camera"),
    ("configured", {"location": "x"}, 400, "hub's config file"),
    ("garden", {"name": "other"}, 400, "unknown field 'name'"),
    ("garden", {"url": "http://x/"}, 400, "only rtsp://"),
])
def test_only_pull_cameras_added_here_can_be_edited(app: Flask, as_admin: FlaskClient,
                                                    camera: str, body: dict[str, Any],
                                                    status: int, message: str) -> None:
    add_camera(app, "porch")
    add_camera(app, "configured", kind="pull")  # pulled per the config file: no url in the row
    add_camera(app, "garden", kind="pull", url=PULL_URL)
    response = as_admin.patch(f"/api/v1/cameras/{camera}", json=body)
    assert response.status_code == status and message in response.get_json()["error"]
    assert camera_row(app, "garden").url == PULL_URL


def test_removing_a_camera_without_footage_deletes_it(app: Flask, as_admin: FlaskClient,
                                                      hub: FakeHub) -> None:
    add_camera(app, "garden", kind="pull", url=PULL_URL, state="stopped", online=False)
    response = as_admin.delete("/api/v1/cameras/garden")
    assert response.status_code == 200 and response.get_json()["result"] == "ok: reload garden"
    assert camera_row(app, "garden") is None


def test_removing_a_camera_with_footage_keeps_its_row_and_footage(
        app: Flask, as_admin: FlaskClient, hub: FakeHub, clock: FakeClock) -> None:
    add_camera(app, "garden", kind="pull", url=PULL_URL)
    add_segment(app, "garden", clock.now)
    assert as_admin.delete("/api/v1/cameras/garden").status_code == 200
    row = camera_row(app, "garden")
    assert (row.url, row.enabled) == (None, False)
    assert as_admin.patch("/api/v1/cameras/garden", json={"location": "x"}).status_code == 400
    # the name can be used again for a pull camera, and the footage stays with it
    again = as_admin.post("/api/v1/cameras", json={"name": "garden", "url": "rtsp://cam2/"})
    assert again.status_code == 201
    row = camera_row(app, "garden")
    assert (row.url, row.enabled) == ("rtsp://cam2/", True)


def test_removing_before_the_hub_answers_keeps_the_row(app: Flask, as_admin: FlaskClient) -> None:
    # the hub may still be pulling it: deleting the row now could orphan its last segment
    add_camera(app, "garden", kind="pull", url=PULL_URL)
    assert as_admin.delete("/api/v1/cameras/garden").status_code == 202
    assert camera_row(app, "garden").url is None


# -- the service's rules -----------------------------------------------------------------------

@pytest.mark.parametrize(("url", "shown"), [
    ("rtsp://admin:pw@cam:554/s", "rtsp://***@cam:554/s"),
    ("rtsp://admin:p@ss@cam/s", "rtsp://***@cam/s"),
    ("rtsp://cam/s?user=admin&password=pw&channel=1",
     "rtsp://cam/s?user=admin&password=***&channel=1"),
    ("rtsp://cam/s?token=abc", "rtsp://cam/s?token=***"),
    ("rtsps://cam/s", "rtsps://cam/s"),
])
def test_display_url_hides_credentials(url: str, shown: str) -> None:
    assert cameras_service.display_url(url) == shown


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0 s"), (59, "59 s"), (61, "1 min 01 s"), (3600, "1 h 00 min"), (90061, "1 d 1 h"),
])
def test_human_duration(seconds: int, text: str) -> None:
    assert cameras_service.human_duration(dt.timedelta(seconds=seconds)) == text


@pytest.mark.parametrize(("bps", "text"), [(500, "500 bit/s"), (64_000, "64 kbit/s"),
                                           (2_345_678, "2.3 Mbit/s")])
def test_human_bitrate(bps: float, text: str) -> None:
    assert cameras_service.human_bitrate(bps) == text


def test_every_action_maps_to_one_the_hub_knows() -> None:
    assert set(cameras_service.CONTROL_ACTIONS.values()) <= set(hub_control.ACTIONS)
