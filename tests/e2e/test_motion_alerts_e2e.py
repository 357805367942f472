"""Motion alerts end to end: a real hub whose config turns a camera's motion alerts on emails one
motion event, once, to a SendGrid stand-in, with the snapshot attached and a link to play it."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from nvrlib.catalog.db import make_engine
from nvrlib.catalog.models import Camera, HubStatus, MotionEvent, utcnow
from tests.support.procs import wait_for
from tests.support.sendgrid_stub import SendGridStub, attachments_of

from .test_alerts_e2e import alert_env, alert_rows, of_kind, sendgrid  # noqa: F401  (fixture)

pytestmark = pytest.mark.e2e

JPEG = b"\xff\xd8\xff\xe0" + b"motion" * 20 + b"\xff\xd9"
CONFIG = """[[cameras]]
name = "porch"
motion_alerts = true
[alerts]
web_url = "http://nvr.local:8080"
retry_initial = 0.5
send_timeout = 2
disk_low_percent = 0
"""


def _heartbeat(engine: Engine) -> dt.datetime | None:
    with Session(engine) as session:  # a new session each time: a fresh read
        return session.scalar(select(HubStatus.heartbeat_at))


def test_a_camera_with_motion_alerts_on_emails_its_motion_once(hub_factory,
                                                               sendgrid: SendGridStub) -> None:
    hub = hub_factory(config=CONFIG, env=alert_env(sendgrid)).start()
    hub.process.wait_line(r"motion alerts: watching motion events", 30)
    snapshot = hub.storage / "porch" / "motion" / "1.jpg"
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    snapshot.write_bytes(JPEG)
    engine = make_engine(hub.db_url)
    try:
        with Session(engine) as session:  # what the hub stores when an edge reports motion
            camera = Camera(name="porch")
            session.add(camera)
            session.flush()
            start = utcnow()
            session.add(MotionEvent(camera_id=camera.id, event_key="porch-1", start_time=start,
                                    end_time=None, score=0.2, box_x=0, box_y=0, box_w=1,
                                    box_h=1, snapshot_path="porch/motion/1.jpg", source="edge"))
            session.commit()
        mail = sendgrid.wait_for(of_kind("motion", "porch"), 30).json
        assert attachments_of(mail) == [("motion-1.jpg", "image/jpeg", JPEG)]
        body = next(p["value"] for p in mail["content"] if p["type"] == "text/plain")
        assert "http://nvr.local:8080/recordings/play?camera=porch&start=" in body
        with Session(engine) as session:  # the event ends: the same row is updated
            session.scalar(select(MotionEvent)).end_time = start + dt.timedelta(seconds=5)
            session.commit()
        ended = utcnow()
        # a heartbeat 2.5 s later: the 2-s job has run since
        wait_for(lambda: (_heartbeat(engine) or ended) > ended + dt.timedelta(seconds=2.5), 20,
                 "a later heartbeat")
    finally:
        engine.dispose()
    assert hub.stop() == 0
    assert [row[0] for row in alert_rows(hub, "motion")] == ["sent"]
    assert len([r for r in sendgrid.requests if of_kind("motion")(r.json)]) == 1
