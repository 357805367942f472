"""Motion alerts end to end: a real hub whose config turns a camera's motion alerts on emails one
motion event, once, to a SendGrid stand-in, with the snapshot attached and a link to play it."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
import urllib.request

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


def _report(port: int, event: dict[str, object]) -> int:
    """POST a motion event to the hub as an edge does (docs/design/protocol.md); the status."""
    body = json.dumps(event).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/ingest/v1/porch/events", body,
                                     {"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status


def test_a_camera_with_motion_alerts_on_emails_its_motion_once(hub_factory,
                                                               sendgrid: SendGridStub) -> None:
    hub = hub_factory(config=CONFIG, env=alert_env(sendgrid)).start()
    hub.process.wait_line(r"motion alerts: watching motion events", 30)
    engine = make_engine(hub.db_url)
    try:
        with Session(engine) as session:  # motion never creates a camera: its edge did
            session.add(Camera(name="porch"))
            session.commit()
        start = time.time()
        event = {"event_key": "porch-1", "start": start, "end": None, "score": 0.2,
                 "box": [0, 0, 1, 1], "snapshot": base64.b64encode(JPEG).decode()}
        assert _report(hub.port, event) == 200
        # the hub runs the alert job when it stores the row: the mail comes at once
        mail = sendgrid.wait_for(of_kind("motion", "porch"), 30).json
        assert attachments_of(mail) == [("motion-1.jpg", "image/jpeg", JPEG)]
        body = next(p["value"] for p in mail["content"] if p["type"] == "text/plain")
        assert "http://nvr.local:8080/recordings/play?camera=porch&start=" in body
        # the event ends: the same row is updated, and the job runs again for it
        assert _report(hub.port, {**event, "end": start + 5}) == 200
        wait_for(lambda: _ended(engine), 10, "the event's end stored")
        ended = utcnow()
        # a heartbeat 2.5 s later: the job has had its run for the end report since
        wait_for(lambda: (_heartbeat(engine) or ended) > ended + dt.timedelta(seconds=2.5), 20,
                 "a later heartbeat")
    finally:
        engine.dispose()
    assert hub.stop() == 0
    assert [row[0] for row in alert_rows(hub, "motion")] == ["sent"]
    assert len([r for r in sendgrid.requests if of_kind("motion")(r.json)]) == 1


def _ended(engine: Engine) -> bool:
    with Session(engine) as session:
        return session.scalar(select(MotionEvent.end_time)) is not None
