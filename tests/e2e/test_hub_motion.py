"""Motion for a camera without our edge: a stock ffmpeg pushes a scene in which a square moves
from 8 s to 12 s; the hub finds the motion in the keyframes of its segments, stores the event
with its picture, and its health check says what that costs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select

from nvrlib.catalog import db as catalog_db
from nvrlib.catalog.models import HubStatus, MotionEvent
from nvrlib.ffmpeg_bin import ffmpeg_exe
from tests.support.procs import LoggedProcess, running, wait_for

from .test_motion_e2e import FPS, make_clip

pytestmark = pytest.mark.e2e


def hub_events(url: str) -> tuple[list[MotionEvent], dict]:
    engine = catalog_db.make_engine(url)
    try:
        with engine.connect() as conn:
            events = list(conn.execute(select(MotionEvent).order_by(MotionEvent.start_time)))
            checks = conn.scalar(select(HubStatus.checks)) or "{}"
    finally:
        engine.dispose()
    return events, json.loads(checks)


def test_the_hub_finds_motion_in_a_stock_pushers_footage(hub_factory, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "scene.mp4", 20, 8.0, 12.0)
    stream = tmp_path / "scene.ts"  # a camera's usual 1-s GOP
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(clip),
                    "-c:v", "libx264", "-preset", "ultrafast", "-g", str(FPS), "-f", "mpegts",
                    str(stream)], check=True, timeout=120)
    hub = hub_factory(segment_seconds=2).start()
    pusher = LoggedProcess([ffmpeg_exe(), "-hide_banner", "-loglevel", "warning", "-re",
                            "-i", str(stream), "-c", "copy", "-f", "mpegts", hub.url("gate")])
    with running(pusher):
        wait_for(lambda: any(e.end_time for e in hub_events(hub.db_url)[0]), 40,
                 "an event the hub found")
        wait_for(lambda: "motion" in hub_events(hub.db_url)[1], 15, "the motion check")
    assert hub.stop() == 0, hub.output[-3000:]
    events, checks = hub_events(hub.db_url)
    [event] = [e for e in events if e.end_time is not None]
    assert event.source == "hub" and event.event_key.startswith("hub-")
    assert 2 <= (event.end_time - event.start_time).total_seconds() <= 8
    assert (hub.storage / event.snapshot_path).read_bytes()[:2] == b"\xff\xd8"
    assert checks["motion"]["detail"].startswith("hub motion for 1 camera: ")
    assert "gate " in checks["motion"]["detail"]
