"""An RTSP-only IP camera is recorded by pull, survives the camera dropping, and hides its password."""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
import struct

import pytest

from nvrlib import fmp4
from tests.support.media import decode_fully, segments
from tests.support.rtsp import rtsp_server, unavailable_reason
from tests.support.procs import wait_for
from tests.support.requirements import require

require(unavailable_reason(), module_level=True)

PASSWORD = "p@ss:w/rd-7781"

def run_ids(hub, camera: str) -> list[str]:
    """Distinct runs (ffmpeg processes) that produced a camera's segments, oldest first."""
    with sqlite3.connect(hub.db_path) as conn:
        return [r[0] for r in conn.execute(
            "SELECT s.run_id FROM segments s JOIN cameras c ON c.id = s.camera_id WHERE c.name = ?"
            " GROUP BY s.run_id ORDER BY MIN(s.start_time)", (camera,))]


@pytest.mark.both_ffmpegs
def test_rtsp_camera_is_pulled_reconnected_and_its_credentials_never_shown(hub_factory):
    started = dt.datetime.now(dt.timezone.utc)
    with rtsp_server(user="admin", password=PASSWORD) as camera:
        hub = hub_factory(config=f"""
backoff_initial = 0.5
allow_local_camera_urls = true  # the RTSP server is on 127.0.0.1
[[cameras]]
name = "gate"
location = "front gate"
url = "{camera.url}"
""").start()
        wait_for(lambda: len(segments(hub.db_path, "gate")) >= 2, 40, "pulled segments")
        camera.kill()  # the camera drops off the network
        hub.process.wait_line(r"gate: ffmpeg exited", 30)
        camera.start()
        wait_for(lambda: len(run_ids(hub, "gate")) >= 2 and
                 len(segments(hub.db_path, "gate")) >= 4, 60, "recording after the camera came back")
        assert hub.stop() == 0
    rows = segments(hub.db_path, "gate")
    now = dt.datetime.now(dt.timezone.utc)
    for row in rows:
        assert row.codec == "h264" and row.width > 0
        assert started - dt.timedelta(seconds=1) <= row.start < row.end <= now
        assert decode_fully(hub.storage / row.path).errors == 0
    first_run = [r for r in rows if r.path.split("-")[-2] == run_ids(hub, "gate")[0]]
    for before, after in zip(first_run, first_run[1:]):
        assert abs((after.start - before.end).total_seconds()) <= 0.041
    assert PASSWORD not in hub.output and "p%40ss" not in hub.output
    assert "rtsp://***@127.0.0.1" in hub.output
    with sqlite3.connect(hub.db_path) as conn:
        dump = "\n".join(conn.iterdump())
    assert PASSWORD not in dump and "p%40ss" not in dump


def test_a_pulled_cameras_g711_sound_reaches_the_live_view_as_aac(hub_factory):
    with rtsp_server(extra_args=["--audio", "pcmu", "--width", "320", "--height", "180",
                                 "--fps", "15", "--gop", "15"]) as camera:
        hub = hub_factory(config=f"""
allow_local_camera_urls = true  # the RTSP server is on 127.0.0.1
[[cameras]]
name = "door"
url = "{camera.url}"
""").start()
        wait_for(lambda: segments(hub.db_path, "door"), 40, "a pulled segment")
        live = hub.storage / ".live" / "door"
        live.mkdir(parents=True, exist_ok=True)
        (live / ".wanted").touch()  # what the web app does while someone watches
        hub.process.wait_line(r"door: live view started \(pid \d+, sound: encode\)", 20)
        wait_for(lambda: len(list(live.glob("mse-*-*.m4s"))) >= 2, 20, "two groups of pictures")
        init = next(live.glob("mse-*-init.mp4")).read_bytes()
        # the camera's G.711 became AAC (browsers play no G.711), configuration and all
        assert b"mp4a" in init and b"\x05\x80\x80\x80" in init[init.index(b"esds"):]
        video = fmp4.video_track_id(init)
        group = sorted(live.glob("mse-*-*.m4s"), key=lambda p: p.stat().st_mtime)[0]
        boxes, _ = fmp4.split_boxes(group.read_bytes())
        moofs = [b for b in boxes if fmp4.box_type(b) == b"moof"]
        assert fmp4.starts_with_keyframe(moofs[0], video)
        tracks = {struct.unpack_from(">I", m, at.start() + 8)[0]
                  for m in moofs for at in re.finditer(b"tfhd", m)}
        assert len(tracks) == 2, "picture and sound in the live fragments"
        assert hub.stop() == 0
    # the recording itself is the camera's picture, whole
    for row in segments(hub.db_path, "door"):
        assert decode_fully(hub.storage / row.path).errors == 0
