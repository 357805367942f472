"""Motion from the camera to the owner's inbox and the search (issue 11, "What must be shown"):
a real edge plays a still, noisy scene in which a square moves only from 8 s to 12 s; the real
hub stores the edge's events, emails one motion alert with the edge's picture attached to a
SendGrid stand-in, and the web app's `motion=true` keeps only the recordings with motion.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from nvrlib.catalog import db as catalog_db
from nvrlib.catalog.models import MotionEvent
from tests.support.procs import running, wait_for
from tests.support.sendgrid_stub import SendGridStub, attachments_of
from tests.webapp.helpers import dispose

from .test_alerts_e2e import alert_env, sendgrid  # noqa: F401  (fixture)
from .test_motion_e2e import CAMERA, TOKEN, make_clip, start_edge
from .test_several_hubs_pg import web_app

pytestmark = pytest.mark.e2e

MOVE_FROM, MOVE_TO, CLIP = 8.0, 12.0, 40  # one moving span in a clip longer than the test
CONFIG = f"""ingest_token = "{TOKEN}"
[[cameras]]
name = "{CAMERA}"
motion_alerts = true
[alerts]
retry_initial = 0.5
send_timeout = 2
disk_low_percent = 0
"""


def motion_events(url: str) -> list[MotionEvent]:
    engine = catalog_db.make_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(MotionEvent).order_by(MotionEvent.start_time)))
    finally:
        engine.dispose()


def test_motion_reaches_the_catalog_the_inbox_and_the_search(
        hub_factory, sendgrid: SendGridStub, tmp_path: Path) -> None:  # noqa: F811
    clip = make_clip(tmp_path / "scene.mp4", CLIP, MOVE_FROM, MOVE_TO)
    hub = hub_factory(config=CONFIG, segment_seconds=2, env=alert_env(sendgrid)).start()
    edge = start_edge(hub, clip, tmp_path / "spool")
    with running(edge):
        started = dt.datetime.now(dt.timezone.utc)
        wait_for(lambda: any(e.end_time for e in motion_events(hub.db_url)), 45,
                 "a motion event that ended")
        mail = sendgrid.wait_for(lambda j: j.get("custom_args", {}).get("kind") == "motion",
                                 30).json
        # footage on both sides of the motion, so that motion=true has something to leave out
        wait_for(lambda: dt.datetime.now(dt.timezone.utc) - started > dt.timedelta(seconds=24),
                 30, "footage after the motion", interval=0.5)
    [event] = motion_events(hub.db_url)
    assert event.source == "edge"  # the hub leaves a camera whose edge detects motion to it
    offset = (event.start_time - started).total_seconds()
    assert MOVE_FROM - 1 <= offset <= MOVE_TO + 6, (offset, event)  # the edge started after us
    assert (event.end_time - event.start_time).total_seconds() < (MOVE_TO - MOVE_FROM) + 5
    [(name, mimetype, picture)] = attachments_of(mail)
    assert mimetype == "image/jpeg" and picture[:2] == b"\xff\xd8" and len(picture) > 2000
    assert (hub.storage / event.snapshot_path).read_bytes() == picture
    assert hub.stop() == 0, hub.output[-3000:]
    # a first start on a fresh catalog: the edge's reports waited for its accepted stream, so
    # neither side logged the camera as unknown nor the hub as unreachable
    assert "unknown camera" not in hub.output and "unreachable" not in edge.output, edge.output
    assert len([r for r in sendgrid.requests
                if r.json.get("custom_args", {}).get("kind") == "motion"]) == 1

    app, bearer = web_app(hub.db_url, hub.storage, [], tmp_path)
    try:
        client = app.test_client()
        every = client.get(f"/api/v1/recordings?camera={CAMERA}&limit=500", headers=bearer)
        moving = client.get(f"/api/v1/recordings?camera={CAMERA}&motion=true&limit=500",
                            headers=bearer)
        every, moving = every.get_json(), moving.get_json()
        assert 0 < len(moving) < len(every), (len(moving), len(every))

        def overlaps(row: dict) -> bool:
            start, end = (dt.datetime.fromisoformat(row[k].replace("Z", "+00:00"))
                          for k in ("start", "end"))
            return start < event.end_time and end > event.start_time

        assert {r["id"] for r in moving} == {r["id"] for r in every if overlaps(r)}
        listed = client.get("/api/v1/events?type=motion", headers=bearer).get_json()
        assert [e["camera"] for e in listed] == [CAMERA]
        with client.get(listed[0]["snapshot"], headers=bearer) as snapshot:
            assert snapshot.data == picture
    finally:
        dispose(app)
