"""The status every page shows is the truth: a live view does not change it, dark cameras count.

Users saw every camera turn "hub silent" on the admin page when a live view closed, while
``/api/v1/health`` said ``ok`` with 0 of 2 cameras online; and pushed cameras admitted
automatically stayed "awaiting approval" for ever, never counted as offline. A real hub
records stock ffmpeg pushers; the web app (Flask, on the hub's catalog and storage) is what
the pages and the API are.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from nvrlib.catalog.models import Alert
from tests.e2e.test_webapp_control import WebApp
from tests.support.procs import Hub, ffmpeg_pusher, running, wait_for
from tests.webapp.helpers import dispose
from webapp.extensions import db

pytestmark = pytest.mark.e2e

CAMERAS = ("cam-a", "cam-b")
WATCH_AFTER_CLOSE = 8.0  # seconds to keep checking once the hub stopped the live views


@pytest.fixture
def stack(hub_factory, tmp_path: Path) -> Iterator[tuple[Hub, WebApp]]:
    """A running hub (2-s segments, default config: new cameras allowed) and the web app."""
    hub = hub_factory(segment_seconds=2).start()
    web = WebApp(hub, tmp_path)
    try:
        yield hub, web
    finally:
        dispose(web.app)


def health(web: WebApp) -> dict[str, Any]:
    """``GET /api/v1/health`` (no login), its body."""
    return web.app.test_client().get("/api/v1/health").get_json()


def cameras(web: WebApp) -> dict[str, dict[str, Any]]:
    """Every camera as ``GET /api/v1/cameras`` (which the admin page polls) shows it."""
    response = web.client.get("/api/v1/cameras", headers=web.bearer)
    assert response.status_code == 200
    return {camera["name"]: camera for camera in response.get_json()}


def all_recording(web: WebApp) -> bool:
    """Every test camera online and approved; health ok with all of them online."""
    shown = cameras(web)
    report = health(web)
    return (all(name in shown and shown[name]["online"] and not shown[name]["stale"]
                and shown[name]["approval"] == "approved" for name in CAMERAS)
            and report["status"] == "ok" and report["cameras"]["online"] == len(CAMERAS))


def admin_page(web: WebApp) -> str:
    """The admin page's HTML, for an admin's browser session."""
    session, _ = web.session()
    return session.get("/admin/").get_data(as_text=True)


def fetch_live_playlist(web: WebApp, camera: str) -> int:
    """What the live player does every second: fetch the playlist (which marks it wanted)."""
    return web.client.get(f"/live/{camera}/live.m3u8", headers=web.bearer).status_code


def test_opening_and_closing_a_live_view_leaves_every_camera_status_alone(
        stack: tuple[Hub, WebApp]) -> None:
    hub, web = stack
    pushers = [ffmpeg_pusher(hub.url(name)) for name in CAMERAS]
    with running(*pushers):
        wait_for(lambda: all_recording(web), 40, "both cameras recording and health ok",
                 interval=0.5)
        # open the live view of both cameras (the live grid does that), until both play
        wait_for(lambda: all(fetch_live_playlist(web, name) == 200 for name in CAMERAS), 30,
                 "both live playlists", interval=1.0)
        assert all_recording(web)
        # close it: the viewer's marks age past the hub's 20 s (as if it left 30 s ago)
        for name in CAMERAS:
            mark = hub.storage / ".live" / name / ".wanted"
            past = time.time() - 30
            os.utime(mark, (past, past))
        hub.process.wait_line(rf"{CAMERAS[0]}: live view stopped", 15)
        hub.process.wait_line(rf"{CAMERAS[1]}: live view stopped", 15)
        # status stays right on every page for a while after: no "hub silent", health ok
        deadline = time.monotonic() + WATCH_AFTER_CLOSE
        while time.monotonic() < deadline:
            assert all_recording(web), (cameras(web), health(web))
            time.sleep(0.5)
        html = admin_page(web)
        assert "hub silent" not in html and html.count(">running</span>") == len(CAMERAS)
        for pusher in pushers:
            pusher.terminate()


def test_a_camera_admitted_automatically_is_approved_and_offline_when_its_pusher_stops(
        stack: tuple[Hub, WebApp]) -> None:
    hub, web = stack
    pusher = ffmpeg_pusher(hub.url("porch"))
    with running(pusher):
        wait_for(lambda: (cameras(web).get("porch") or {}).get("online"), 20, "porch online")
        porch = cameras(web)["porch"]
        assert (porch["approval"], porch["enabled"]) == ("approved", True)
        wait_for(lambda: health(web)["status"] == "ok", 15, "health ok while porch records")
        html = admin_page(web)
        assert "awaiting approval" not in html
        assert "/admin/cameras/porch/approve" not in html
        assert "/admin/cameras/porch/reject" not in html
        pusher.terminate()  # the edge goes away (a clean end of its stream)

    wait_for(lambda: not cameras(web)["porch"]["online"], 15, "porch offline in the API")
    report = wait_for(lambda: (r := health(web))["cameras"]["offline"] == 1 and r, 10,
                      "health to count porch offline")
    assert report["status"] == "degraded"
    assert report["cameras"] == {"total": 1, "online": 0, "offline": 1, "failed": 0, "not_recording": 0}
    metrics = web.client.get("/metrics", headers=web.bearer).get_data(as_text=True)
    assert 'nvr_camera_offline{camera="porch"} 1.0' in metrics
    assert 'title="It should be recording but is not (stopped)">offline</span>' in admin_page(web)

    # the alerts: the new camera stays on the Events page for review, the outage is reported
    def alert_kinds() -> list[tuple[str, str]]:
        with web.app.app_context():
            rows = db.session.execute(select(Alert.kind, Alert.details)
                                      .where(Alert.camera == "porch")).all()
            db.session.rollback()
        return [(kind, details) for kind, details in rows]

    wait_for(lambda: {"new_camera", "offline"} <= {k for k, _ in alert_kinds()}, 15,
             "the new_camera and offline alerts")
    new_camera = next(details for kind, details in alert_kinds() if kind == "new_camera")
    assert '"approval": "approved"' in new_camera
    events = web.session()[0].get("/events/").get_data(as_text=True)
    assert "new camera porch connected" in events
