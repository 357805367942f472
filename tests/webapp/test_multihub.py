"""Two hubs on one catalog, seen from the web app: footage, live files, commands, health.

Hub ``main`` records into the web app's own storage; hub ``b`` into a storage the web app
reaches as a mount (``storage_mounts``). Their footage is real (the clips of
test_recordings_support); the hubs themselves are not started (the lead's PostgreSQL end-to-end
test does that): their rows are written as they write them.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from nvrlib.catalog.models import Camera, Command, Hub, HubStatus, Segment
from webapp.extensions import db
from webapp.hub_storage import MARKER_FILE

from .helpers import Account, FakeClock
from .test_api_cameras import logged_in
from .test_recordings_support import T0, clips, iso  # noqa: F401  (fixtures)

PULL_URL = "rtsp://192.0.2.10:554/stream1"
CLIP = dt.timedelta(seconds=2)


class TwoHubs:
    """A catalog with hubs main and b, each with a camera and its footage in its own storage."""

    def __init__(self, app: Flask, mount: Path, clips: list[Path]) -> None:
        self.app, self.mount, self.clips = app, mount, clips
        self.own = Path(app.config["STORAGE_ROOT"])
        self.segments: dict[str, list[int]] = {}

    def register(self) -> None:
        for folder, storage_id in ((self.own, "id-main"), (self.mount, "id-b")):
            folder.mkdir(parents=True, exist_ok=True)
            (folder / MARKER_FILE).write_text(storage_id + "\n", encoding="ascii")
        with self.app.app_context():
            db.session.add_all([Hub(id="main", storage_id="id-main", storage_root="/srv/nvr",
                                    listen="0.0.0.0:8554"),
                                Hub(id="b", storage_id="id-b", storage_root="/srv/nvr",
                                    listen="10.0.0.2:8554")])
            db.session.commit()

    def footage(self, camera: str, hub_id: str, root: Path) -> None:
        """The three clips as ``camera``'s segments from T0, in ``root`` (hub ``hub_id``'s)."""
        with self.app.app_context():
            row = Camera(name=camera, location=f"{camera} place", hub_id=hub_id, first_seen=T0)
            db.session.add(row)
            db.session.flush()
            ids = []
            for index, clip in enumerate(self.clips):
                path = f"{camera}/2026-03-01/{camera}-{index}.ts"
                (root / path).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(clip, root / path)
                start = T0 + index * CLIP
                segment = Segment(camera_id=row.id, seq=index, start_time=start,
                                  end_time=start + CLIP, duration=2.0,
                                  size_bytes=clip.stat().st_size, path=path, codec="h264",
                                  hub_id=hub_id)
                db.session.add(segment)
                db.session.flush()
                ids.append(segment.id)
            db.session.commit()
        self.segments[camera] = ids


@pytest.fixture
def mount(tmp_path: Path) -> Path:
    """Where hub b's storage is mounted on the web app's machine."""
    return tmp_path / "mnt" / "hub-b"


@pytest.fixture
def two_hubs(make_app: Callable[..., Flask], mount: Path, clips: list[Path]) -> TwoHubs:
    """Hubs main (porch) and b (yard), the web app configured with b's mount."""
    app = make_app(STORAGE_MOUNTS=[str(mount)], CAMERA_COMMAND_TIMEOUT=0.0)
    hubs = TwoHubs(app, mount, clips)
    hubs.register()
    hubs.footage("porch", "main", hubs.own)
    hubs.footage("yard", "b", mount)
    return hubs


@pytest.fixture
def viewer(two_hubs: TwoHubs, viewer_user: Account) -> FlaskClient:
    return logged_in(two_hubs.app, viewer_user)


@pytest.fixture
def admin(two_hubs: TwoHubs, admin_user: Account) -> FlaskClient:
    return logged_in(two_hubs.app, admin_user)


def cut_off(two_hubs: TwoHubs, make_app: Callable[..., Flask], account: Account) -> FlaskClient:
    """A second web app on the same catalog that lacks hub b's mount, logged in."""
    app = make_app(CAMERA_COMMAND_TIMEOUT=0.0)
    return logged_in(app, account)


# -- footage -----------------------------------------------------------------------------------

def test_each_hubs_segments_play_from_its_own_storage(two_hubs: TwoHubs, viewer: FlaskClient,
                                                      clips: list[Path]) -> None:
    for camera in ("porch", "yard"):
        first = two_hubs.segments[camera][0]
        response = viewer.get(f"/api/v1/recordings/{first}/file", buffered=True)
        assert response.status_code == 200, (camera, response.get_data(as_text=True))
        assert response.get_data() == clips[0].read_bytes()
        thumbnail = viewer.get(f"/recordings/{first}/thumbnail.jpg", buffered=True)
        assert thumbnail.status_code == 200 and thumbnail.data[:2] == b"\xff\xd8"
        playlist = viewer.get(f"/api/v1/playback/{camera}.m3u8?start={iso(T0)}")
        assert playlist.status_code == 200 and playlist.get_data(as_text=True).count("#EXTINF") == 3
    # the thumbnail is cached in the storage of the hub whose retention deletes it
    assert list((two_hubs.mount / ".thumbs" / "yard").glob("*.jpg"))
    assert not (two_hubs.own / ".thumbs" / "yard").exists()


def test_a_hub_b_camera_exports_from_hub_bs_storage(viewer: FlaskClient) -> None:
    response = viewer.get(f"/api/v1/export/yard.mp4?start={iso(T0)}&end={iso(T0 + 3 * CLIP)}",
                          buffered=True)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type == "video/mp4" and len(response.get_data()) > 1000


def test_footage_of_an_unreachable_hub_is_a_clear_503_and_the_other_hub_still_plays(
        two_hubs: TwoHubs, make_app: Callable[..., Flask], viewer_user: Account) -> None:
    client = cut_off(two_hubs, make_app, viewer_user)
    porch, yard = two_hubs.segments["porch"][0], two_hubs.segments["yard"][0]
    assert client.get(f"/api/v1/recordings/{porch}/file", buffered=True).status_code == 200
    refused = [client.get(f"/api/v1/recordings/{yard}/file"),
               client.get(f"/api/v1/playback/yard.m3u8?start={iso(T0)}"),
               client.get(f"/api/v1/export/yard.mp4?start={iso(T0)}&end={iso(T0 + CLIP)}")]
    for response in refused:
        assert response.status_code == 503
        message = response.get_json()["error"]
        assert "hub b" in message and "storage_mounts" in message
    thumbnail = client.get(f"/recordings/{yard}/thumbnail.jpg")
    assert thumbnail.status_code == 503 and b"storage_mounts" in thumbnail.data
    page = client.get(f"/recordings/play?camera=yard&start={iso(T0)}")
    assert page.status_code == 200
    assert b"data-storage-unreachable" in page.data and b"hub b" in page.data
    assert b"data-storage-unreachable" not in client.get(
        f"/recordings/play?camera=porch&start={iso(T0)}").data


# -- live --------------------------------------------------------------------------------------

def test_live_files_are_read_and_asked_for_in_the_camera_hubs_storage(
        two_hubs: TwoHubs, viewer: FlaskClient, make_app: Callable[..., Flask],
        viewer_user: Account) -> None:
    live = two_hubs.mount / ".live" / "yard"
    live.mkdir(parents=True)
    (live / "live.m3u8").write_text("#EXTM3U\n#EXTINF:1.0,\nr1-0.ts\n", encoding="ascii")
    (live / "r1-0.ts").write_bytes(b"G" * 188)
    playlist = viewer.get("/live/yard/live.m3u8")
    assert playlist.status_code == 200 and b"r1-0.ts" in playlist.data
    assert (live / ".wanted").exists()  # hub b sees that someone watches
    assert not (two_hubs.own / ".live" / "yard").exists()
    assert viewer.get("/live/yard/r1-0.ts").data == b"G" * 188
    client = cut_off(two_hubs, make_app, viewer_user)
    for url in ("/live/yard/live.m3u8", "/live/yard/r1-0.ts"):
        response = client.get(url)
        assert response.status_code == 503 and b"storage_mounts" in response.data
    health = client.get("/health").get_data(as_text=True)  # the Health page says so too
    assert health.count("data-unreachable") == 1


# -- commands and pull cameras -----------------------------------------------------------------

def sent(app: Flask) -> list[tuple[str, str, str]]:
    """Every command so far: (camera, action, hub)."""
    with app.app_context():
        rows = db.session.execute(select(Command.camera, Command.action, Command.hub_id)
                                  .order_by(Command.id))
        return [tuple(row) for row in rows]


def test_a_command_goes_to_the_hub_of_its_camera(two_hubs: TwoHubs, admin: FlaskClient) -> None:
    assert admin.post("/api/v1/cameras/yard/restart").status_code == 202
    assert admin.post("/api/v1/cameras/porch/restart").status_code == 202
    assert sent(two_hubs.app) == [("yard", "restart", "b"), ("porch", "restart", "main")]


def test_a_pull_camera_added_through_the_api_goes_to_the_named_hub(
        two_hubs: TwoHubs, admin: FlaskClient) -> None:
    response = admin.post("/api/v1/cameras", json={"name": "gate", "url": PULL_URL, "hub": "b"})
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["camera"]["hub"] == "b"
    assert admin.patch("/api/v1/cameras/gate", json={"location": "Gate"}).status_code == 202
    assert admin.delete("/api/v1/cameras/gate").status_code == 202
    assert sent(two_hubs.app) == [("gate", "reload", "b")] * 3  # added, edited, removed: on b
    listed = {camera["name"]: camera["hub"] for camera in admin.get("/api/v1/cameras").get_json()}
    assert listed == {"gate": "b", "porch": "main", "yard": "b"}


@pytest.mark.parametrize(("body", "needle"), [
    ({"hub": "nowhere"}, "hub: no hub 'nowhere'"),
    ({}, "hub: several hubs record into this catalog; name one of b, main"),
    ({"hub": 7}, "'hub' must be a string"),
])
def test_a_pull_camera_needs_a_known_hub_when_there_are_several(
        two_hubs: TwoHubs, admin: FlaskClient, body: dict, needle: str) -> None:
    response = admin.post("/api/v1/cameras", json={"name": "gate", "url": PULL_URL, **body})
    assert response.status_code == 400
    assert needle in response.get_json()["error"]
    with two_hubs.app.app_context():
        assert db.session.scalar(select(Camera).where(Camera.name == "gate")) is None
    assert sent(two_hubs.app) == []


def test_the_add_camera_form_offers_the_hubs_only_when_there_are_several(
        two_hubs: TwoHubs, admin: FlaskClient, make_app: Callable[..., Flask],
        admin_user: Account) -> None:
    page = admin.get("/admin/cameras/new").get_data(as_text=True)
    assert '<select class="form-select" id="hub" name="hub">' in page
    assert '<option value="b">b</option>' in page
    assert '<option selected value="main">main</option>' in page
    response = admin.post("/admin/cameras/new", data={"name": "gate", "url": PULL_URL,
                                                      "hub": "b"})
    assert response.status_code == 302
    refused = admin.post("/admin/cameras/new", data={"name": "drive", "url": PULL_URL,
                                                     "hub": "nowhere"})
    assert refused.status_code == 400 and b"no hub &#39;nowhere&#39;" in refused.data
    assert sent(two_hubs.app) == [("gate", "reload", "b")]


def test_with_one_hub_the_form_and_the_panel_look_as_before(make_app: Callable[..., Flask],
                                                            admin_user: Account) -> None:
    app = make_app(CAMERA_COMMAND_TIMEOUT=0.0)
    client = logged_in(app, admin_user)
    assert b'name="hub"' not in client.get("/admin/cameras/new").data
    assert client.post("/admin/cameras/new",
                       data={"name": "gate", "url": PULL_URL}).status_code == 302
    with app.app_context():
        assert db.session.scalar(select(Command.hub_id)) == "main"
    panel = client.get("/admin/").get_data(as_text=True)
    assert 'data-field="hub"' not in panel
    health = client.get("/health").get_data(as_text=True)
    assert 'data-hub="main"' in health and "data-unreachable" not in health


# -- health ------------------------------------------------------------------------------------

def beat(app: Flask, hub_id: str, age: float, free: int, **columns: object) -> None:
    """Write hub ``hub_id``'s hub_status row as it does, its heartbeat ``age`` s old."""
    now = app.config["CLOCK"]()
    with app.app_context():
        db.session.add(HubStatus(hub_id=hub_id, pid=1, started_at=now - dt.timedelta(hours=1),
                                 heartbeat_at=now - dt.timedelta(seconds=age),
                                 disk_total_bytes=1000, disk_free_bytes=free,
                                 footage_bytes=123, checks=json.dumps({"disk": {"ok": True}}),
                                 **columns))
        db.session.commit()


def test_health_with_two_hubs_one_of_them_silent(two_hubs: TwoHubs, viewer: FlaskClient,
                                                 admin: FlaskClient) -> None:
    app = two_hubs.app
    beat(app, "main", 3.0, 500, email_enabled=True, recipients="old@example.com")
    beat(app, "b", 600.0, 100)
    anonymous = app.test_client().get("/api/v1/health").get_json()
    assert anonymous["status"] == "degraded"
    assert anonymous["hub"] == {"running": False, "heartbeat_age_seconds": 600.0, "total": 2,
                                "silent": 1}
    assert "hubs" not in anonymous and "problems" not in anonymous
    assert anonymous["disk"]["free_bytes"] == 100  # the fuller disk is the one to warn about
    report = viewer.get("/api/v1/health").get_json()
    assert report["problems"] == ["hub b silent since 2026-03-01T11:50:00.000Z"]
    assert [(h["id"], h["running"], h["listen"], h["storage_reachable"])
            for h in report["hubs"]] == [("b", False, "10.0.0.2:8554", True),
                                         ("main", True, "0.0.0.0:8554", True)]
    metrics = viewer.get("/metrics").get_data(as_text=True)
    assert 'nvr_hub_up{hub="b"} 0.0' in metrics and 'nvr_hub_up{hub="main"} 1.0' in metrics
    assert 'nvr_disk_free_bytes{hub="b"} 100.0' in metrics
    page = viewer.get("/health").get_data(as_text=True)
    assert 'data-health-status="degraded"' in page
    assert "hub b silent since 2026-03-01T11:50:00.000Z" in page
    assert 'data-hub="b"' in page and 'data-hub="main"' in page and "data-unreachable" not in page
    panel = admin.get("/admin/").get_data(as_text=True)
    assert 'data-field="hub"' in panel and ">hub b<" in panel and ">hub main<" in panel


def test_every_hub_beating_is_running_and_none_beating_is_down(
        two_hubs: TwoHubs, clock: FakeClock) -> None:
    app = two_hubs.app
    beat(app, "main", 3.0, 500)
    beat(app, "b", 4.0, 500)
    client = app.test_client()
    ok = client.get("/api/v1/health")
    assert ok.status_code == 200  # degraded only by the cameras, which report nothing here
    assert ok.get_json()["hub"] == {"running": True, "heartbeat_age_seconds": 4.0, "total": 2,
                                    "silent": 0}
    clock.advance(minutes=5)
    down = client.get("/api/v1/health")
    assert (down.status_code, down.get_json()["status"]) == (503, "down")


def test_alert_settings_show_what_the_latest_beating_hub_said(two_hubs: TwoHubs,
                                                              admin: FlaskClient) -> None:
    beat(two_hubs.app, "b", 600.0, 100, email_enabled=False, recipients_source="none")
    beat(two_hubs.app, "main", 2.0, 500, email_enabled=True, recipients_source="web",
         recipients="ops@example.com")
    settings = admin.get("/api/v1/alerts/settings").get_json()
    assert settings["hub_running"] is True and settings["email_enabled"] is True
    assert settings["recipients"] == ["ops@example.com"]
