"""The control channel: the web app's commands reach the hub through the catalog database."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from nvrlib.catalog.models import Camera
from tests.support.control import CatalogControl
from tests.support.media import segments
from tests.support.procs import ffmpeg_pusher, running, wait_for
from tests.support.rtsp import rtsp_server, unavailable_reason
from tests.support.requirements import require


@pytest.fixture
def control(hub_factory):
    # allow_local_camera_urls: the pull test's RTSP camera is on 127.0.0.1
    hub = hub_factory(segment_seconds=2, config="allow_local_camera_urls = true\n").start()
    catalog = CatalogControl(hub)
    yield hub, catalog
    catalog.engine.dispose()


def test_status_shows_a_live_stream_with_fps_and_bitrate(control):
    hub, catalog = control
    with running(pusher := ffmpeg_pusher(hub.url("porch"))):
        status = wait_for(lambda: (s := catalog.status("porch")) and s.online and s.fps > 20
                          and s.bitrate_bps > 10_000 and s, 20, "a live status")
        assert status.state == "running" and status.kind == "push" and status.pid
        assert status.peer.startswith("127.0.0.1:") and status.connected_since is not None
        wait_for(lambda: catalog.status("porch").last_segment_end is not None, 10, "segment time")
        pusher.terminate()
        wait_for(lambda: not catalog.status("porch").online, 10, "offline after the edge left")
        assert catalog.status("porch").offline_since is not None


def test_restart_disconnect_disable_enable(control):
    hub, catalog = control
    pusher = ffmpeg_pusher(hub.url("porch"))
    with running(pusher):
        wait_for(lambda: segments(hub.db_path, "porch"), 20, "recording")
        assert catalog.wait_result(catalog.submit("porch", "restart")) == "ok: ffmpeg restarted"
        wait_for(lambda: catalog.status("porch").restarts >= 1, 10, "a restart in the status")
        count = len(segments(hub.db_path, "porch"))
        wait_for(lambda: len(segments(hub.db_path, "porch")) > count + 1, 20, "recording again")
        assert catalog.wait_result(catalog.submit("porch", "disconnect")) == "ok: edge disconnected"
        pusher.proc.wait(15)  # the hub closed its connection
    assert catalog.wait_result(catalog.submit("porch", "disable")) == "ok: disabled"
    assert catalog.camera("porch").enabled is False
    refused = ffmpeg_pusher(hub.url("porch"), seconds=3)
    with running(refused):
        refused.proc.wait(20)
    hub.process.wait_line(r"rejected: 423 camera porch is disabled")
    assert catalog.wait_result(catalog.submit("porch", "enable")) == "ok: enabled"
    count = len(segments(hub.db_path, "porch"))
    with running(again := ffmpeg_pusher(hub.url("porch"), seconds=5)):
        assert again.proc.wait(30) == 0
    wait_for(lambda: len(segments(hub.db_path, "porch")) > count, 10, "recording after enable")
    assert catalog.wait_result(catalog.submit("nobody", "restart")) == "not streaming"


def test_new_camera_is_recorded_and_approved(control):
    hub, catalog = control
    with running(pusher := ffmpeg_pusher(hub.url("stranger"), seconds=3)):
        pusher.proc.wait(30)
    assert catalog.camera("stranger").approval == "approved"
    wait_for(lambda: segments(hub.db_path, "stranger"), 10, "the new camera's footage")


def test_approval_can_be_required(hub_factory):
    hub = hub_factory(config="require_approval = true\n").start()
    with running(pusher := ffmpeg_pusher(hub.url("stranger"), seconds=3)):
        pusher.proc.wait(30)
    hub.process.wait_line(r"rejected: 403 camera stranger is awaiting an admin's approval")
    assert not segments(hub.db_path, "stranger")
    hub.stop()
    hub.start()  # pending stays pending while approval is required
    catalog = CatalogControl(hub)
    try:
        assert catalog.camera("stranger").approval == "pending"
    finally:
        catalog.engine.dispose()


def test_cameras_left_pending_without_required_approval_are_approved_at_start(hub_factory):
    hub = hub_factory(segment_seconds=2).start()
    with running(pusher := ffmpeg_pusher(hub.url("stranger"), seconds=3)):
        pusher.proc.wait(30)
    assert hub.stop() == 0
    catalog = CatalogControl(hub)
    try:
        with Session(catalog.engine) as session, session.begin():
            # as an older hub left an automatically admitted camera: pending for ever
            session.scalar(select(Camera).where(Camera.name == "stranger")).approval = "pending"
        hub.start()
        hub.process.wait_line(r"approval is not required: approved stranger")
        assert catalog.camera("stranger").approval == "approved"
    finally:
        catalog.engine.dispose()


def test_pull_camera_added_in_the_database_is_pulled_after_reload(control):
    require(unavailable_reason())
    hub, catalog = control
    with rtsp_server() as camera:
        catalog.add_pull_camera("garden", camera.url)
        assert catalog.wait_result(catalog.submit("*", "reload")) == "ok: cameras reloaded"
        wait_for(lambda: len(segments(hub.db_path, "garden")) >= 2, 30, "pulled segments")
        assert catalog.wait_result(catalog.submit("garden", "disable")) == "ok: disabled"
        wait_for(lambda: not catalog.status("garden").online, 10, "the pull to stop")
        hub.process.wait_line(r"garden: no longer pulled")
