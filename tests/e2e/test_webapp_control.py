"""The web app controls a real hub through the catalog: its API and panel reach ffmpeg and edges.

A real `python -m recorder` records a stock ffmpeg pusher; the Flask app (test client) reads
the hub's catalog and storage, with its users in a database of its own. CSRF is on.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from nvrlib.catalog.models import utcnow
from tests.support.media import segments
from tests.support.procs import Hub, ffmpeg_pusher, running, wait_for
from tests.support.rtsp import rtsp_server, unavailable_reason
from tests.webapp.helpers import FAST_ARGON2, AuthActions, csrf_token_of, dispose
from tests.support.requirements import require
from webapp import create_app
from webapp.extensions import db
from webapp.models import ROLE_ADMIN, User

pytestmark = pytest.mark.e2e

PASSWORD = "admin-password-123"


class WebApp:
    """The Flask app on a hub's catalog and storage, with an admin who has an API token."""

    def __init__(self, hub: Hub, folder: Path) -> None:
        self.app: Flask = create_app({
            "SQLALCHEMY_DATABASE_URI": hub.db_url, "STORAGE_ROOT": str(hub.storage),
            "USERS_DB_URL": f"sqlite:///{folder / 'users.db'}", "SECRET_KEY": "e2e-secret",
            "ARGON2_PARAMETERS": FAST_ARGON2, "TESTING": True,
            "ALLOW_LOCAL_CAMERA_URLS": True,  # the test's RTSP camera is on 127.0.0.1
        })
        with self.app.app_context():
            admin = User(username="alice", role=ROLE_ADMIN, created_at=utcnow())
            admin.set_password(PASSWORD)
            token = admin.new_api_token(utcnow())
            db.session.add(admin)
            db.session.commit()
        self.bearer = {"Authorization": f"Bearer {token}"}
        self.client = self.app.test_client()

    def session(self) -> tuple[FlaskClient, str]:
        """A browser-like client logged in as the admin, and its CSRF token."""
        client = self.app.test_client()
        assert AuthActions(client).login("alice", PASSWORD).status_code == 302
        return client, csrf_token_of(client.get("/admin/"))

    def camera(self, name: str) -> dict[str, Any] | None:
        """The camera as GET /api/v1/cameras shows it (None until the hub has seen it)."""
        response = self.client.get("/api/v1/cameras", headers=self.bearer)
        assert response.status_code == 200
        return next((c for c in response.get_json() if c["name"] == name), None)

    def post(self, url: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        """POST to the API with the admin's token; return the status and the JSON body."""
        response = self.client.post(url, headers=self.bearer, **kwargs)
        return response.status_code, response.get_json()


@pytest.fixture
def stack(hub_factory, tmp_path: Path) -> Iterator[tuple[Hub, WebApp]]:
    """A running hub (2-s segments) and the web app on its catalog; the hub stops at the end."""
    hub = hub_factory(segment_seconds=2, config="allow_local_camera_urls = true\n").start()
    web = WebApp(hub, tmp_path)
    try:
        yield hub, web
    finally:
        dispose(web.app)


def online(web: WebApp, name: str) -> dict[str, Any] | None:
    camera = web.camera(name)
    return camera if camera and camera["online"] and camera["fps"] > 0 else None


def test_an_admin_restarts_a_stream_and_disconnects_its_edge(stack: tuple[Hub, WebApp]) -> None:
    hub, web = stack
    pusher = ffmpeg_pusher(hub.url("porch"))
    with running(pusher):
        porch = wait_for(lambda: online(web, "porch"), 20, "porch online in GET /api/v1/cameras")
        assert porch["state"] == "running" and porch["restarts"] == 0
        assert porch["peer"].startswith("127.0.0.1:")

        status, body = web.post("/api/v1/cameras/porch/restart")
        assert (status, body["result"]) == (200, "ok: ffmpeg restarted"), body
        wait_for(lambda: web.camera("porch")["restarts"] >= 1, 10, "restarts >= 1 in the status")

        # the same from the control panel's button, in a logged-in browser session
        session, token = web.session()
        response = session.post("/admin/cameras/porch/restart", data={"csrf_token": token},
                                follow_redirects=True)
        assert "Restarted porch. The hub says: ok: ffmpeg restarted" in response.get_data(
            as_text=True)
        wait_for(lambda: web.camera("porch")["restarts"] >= 2, 10, "a second restart")
        count = len(segments(hub.db_path, "porch"))
        wait_for(lambda: len(segments(hub.db_path, "porch")) > count, 20, "recording again")

        response = session.post("/api/v1/cameras/porch/disconnect",
                                headers={"X-CSRFToken": token})
        assert response.status_code == 200
        assert response.get_json()["result"] == "ok: edge disconnected"
        pusher.proc.wait(15)  # the hub closed the edge's connection: the pusher gives up
        wait_for(lambda: not web.camera("porch")["online"], 10, "porch offline")
        assert web.camera("porch")["offline_since"] is not None


def test_disable_stops_recording_and_enable_lets_the_edge_back(stack: tuple[Hub, WebApp]) -> None:
    hub, web = stack
    pusher = ffmpeg_pusher(hub.url("porch"))
    with running(pusher):
        wait_for(lambda: online(web, "porch"), 20, "porch online")
        status, body = web.post("/api/v1/cameras/porch/disable")
        assert (status, body["result"]) == (200, "ok: disabled"), body
        pusher.proc.wait(15)
        wait_for(lambda: not web.camera("porch")["online"], 10, "porch offline")
        assert web.camera("porch")["enabled"] is False
    status, body = web.post("/api/v1/cameras/porch/enable")
    assert (status, body["result"]) == (200, "ok: enabled"), body
    with running(again := ffmpeg_pusher(hub.url("porch"))):
        wait_for(lambda: online(web, "porch"), 20, "porch recording again")
        again.terminate()


def test_the_live_view_starts_when_watched_and_serves_the_hubs_playlist(
        stack: tuple[Hub, WebApp]) -> None:
    hub, web = stack
    session, _token = web.session()
    pusher = ffmpeg_pusher(hub.url("porch"))
    with running(pusher):
        wait_for(lambda: online(web, "porch"), 20, "porch online")
        assert not (hub.storage / ".live" / "porch" / "live.m3u8").exists(), "nobody watches yet"
        # each fetch (as the player makes every second) asks the hub for the live view
        wait_for(lambda: session.get("/live/porch/live.m3u8").status_code == 200, 20,
                 "the live playlist through the web app")
        text = session.get("/live/porch/live.m3u8").get_data(as_text=True)
        pieces = [line for line in text.splitlines() if line and not line.startswith("#")]
        newest = session.get(f"/live/porch/{pieces[-1]}")
        assert newest.status_code == 200 and newest.mimetype == "video/mp2t"
        assert newest.get_data()[:1] == b"\x47"
        # a few seconds behind at most: the newest piece was written moments ago
        written = (hub.storage / ".live" / "porch" / pieces[-1]).stat().st_mtime
        assert time.time() - written < 3
        page = session.get("/live/porch").get_data(as_text=True)
        assert 'data-playlist="/live/porch/live.m3u8"' in page
        pusher.terminate()
        wait_for(lambda: session.get("/live/porch/live.m3u8").status_code == 404, 15,
                 "the playlist to go with the edge")


def test_a_pull_camera_added_in_the_api_is_recorded_and_its_password_stays_hidden(
        stack: tuple[Hub, WebApp]) -> None:
    require(unavailable_reason())
    hub, web = stack
    with rtsp_server(user="admin", password="cam-Secret-9") as camera:
        status, body = web.post("/api/v1/cameras", json={"name": "garden",
                                                          "location": "Back yard",
                                                          "url": camera.url})
        assert (status, body["result"]) == (201, "ok: cameras reloaded"), body
        garden = wait_for(lambda: online(web, "garden"), 30, "the pulled camera online")
        assert garden["kind"] == "pull" and garden["peer"].startswith("rtsp://***@127.0.0.1:")
        session, _token = web.session()
        for url in ("/api/v1/cameras", "/admin/", "/admin/cameras/garden/edit", "/live/"):
            assert "cam-Secret-9" not in session.get(url).get_data(as_text=True), url
        wait_for(lambda: segments(hub.db_path, "garden"), 30, "pulled footage")

        response = web.client.delete("/api/v1/cameras/garden", headers=web.bearer)
        assert response.get_json()["result"] == "ok: cameras reloaded"
        hub.process.wait_line(r"garden: no longer pulled")
        wait_for(lambda: not web.camera("garden")["online"], 10, "the pull to stop")
        assert web.camera("garden")["enabled"] is False  # its footage keeps the row
