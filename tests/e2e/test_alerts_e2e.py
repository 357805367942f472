"""Alerts end to end: a real hub, real edges and ffmpeg, and a real HTTP stand-in for SendGrid.

Each test asserts the JSON that reached the stand-in: recipient, sender, subject, the camera
and the times in the body, and the alert's kind in SendGrid's custom_args.
"""

from __future__ import annotations

import datetime as dt
import re
import socket
import sqlite3
import sys
import time

import pytest

from tests.support.media import encoded_ts, segments
from tests.support.media import http_chunk as chunk
from tests.support.procs import LoggedProcess, ffmpeg_pusher, running, wait_for
from tests.support.sendgrid_stub import SendGridStub

pytestmark = pytest.mark.e2e

OWNER = "owner@example.com"
SENDER = "nvr@example.com"
API_KEY = "SG.e2e-test-key"
ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")


@pytest.fixture
def sendgrid():
    """A SendGrid stand-in on 127.0.0.1, stopped at the end."""
    stub = SendGridStub(api_key=API_KEY).start()
    try:
        yield stub
    finally:
        stub.stop()


def alert_env(stub: SendGridStub) -> dict[str, str]:
    """The environment that points a hub's alerts at the stand-in."""
    return {"SENDGRID_API_KEY": API_KEY, "SENDGRID_API_HOST": stub.url,
            "ALERT_EMAIL_TO": OWNER, "ALERT_EMAIL_FROM": SENDER}


def start_hub(hub_factory, stub: SendGridStub, config: str = "", segment_seconds: float = 2.0):
    """A hub with fast retries, alerting through the stand-in."""
    text = (config + "[alerts]\nretry_initial = 0.5\nretry_max = 2\nsend_timeout = 2\n"
            "disk_low_percent = 0\n")
    return hub_factory(config=text, segment_seconds=segment_seconds, env=alert_env(stub)).start()


def start_edge(hub, camera: str, location: str = "driveway") -> LoggedProcess:
    """One real edge with a synthetic camera."""
    argv = [sys.executable, "-m", "edge", "--hub", "127.0.0.1", "--port", str(hub.port),
            "--location", location, "--fps", "10", "--size", "320x240", "--bitrate", "300k",
            "--camera", "test", "--name", camera]
    return LoggedProcess(argv)


def of_kind(kind: str, camera: str | None = None):
    """A predicate on a mail's JSON: the alert kind (and camera) in its custom_args."""
    def match(mail: dict) -> bool:
        args = mail.get("custom_args", {})
        return args.get("kind") == kind and (camera is None or args.get("camera") == camera)
    return match


def body_of(mail: dict) -> str:
    """The plain-text body of a mail."""
    return next(part["value"] for part in mail["content"] if part["type"] == "text/plain")


def assert_addressed(mail: dict) -> None:
    """Sent to the owner, from the configured sender."""
    assert mail["personalizations"][0]["to"] == [{"email": OWNER}]
    assert mail["from"]["email"] == SENDER


def alert_rows(hub, kind: str) -> list[tuple]:
    """(status, attempts, camera, details) of the hub's stored alerts of a kind."""
    with sqlite3.connect(hub.db_path, timeout=10) as conn:
        return conn.execute("SELECT status, attempts, camera, details FROM alerts WHERE kind = ?"
                            " ORDER BY id", (kind,)).fetchall()


def outages(hub, camera: str) -> list[tuple]:
    """(reason, started_at, ended_at) of a camera's outages, oldest first."""
    with sqlite3.connect(hub.db_path, timeout=10) as conn:
        return conn.execute("SELECT o.reason, o.started_at, o.ended_at FROM outages o JOIN cameras"
                            " c ON c.id = o.camera_id WHERE c.name = ? ORDER BY o.id",
                            (camera,)).fetchall()


def test_new_camera_clean_shutdown_and_recovery_are_emailed(hub_factory, sendgrid):
    hub = start_hub(hub_factory, sendgrid)
    edge = start_edge(hub, "drive")
    with running(edge):
        new = sendgrid.wait_for(of_kind("new_camera", "drive"), 30).json
        assert_addressed(new)
        assert "drive" in new["subject"] and "new camera" in new["subject"].lower()
        assert "driveway" in body_of(new) and ISO_TIME.search(body_of(new))
        wait_for(lambda: segments(hub.db_path, "drive"), 30, "a first segment")
        assert edge.terminate() == 0, edge.output
    offline = sendgrid.wait_for(of_kind("offline", "drive"), 30).json
    assert_addressed(offline)
    assert "drive" in offline["subject"] and "offline" in offline["subject"].lower()
    assert "shut down cleanly" in body_of(offline)
    assert ISO_TIME.search(body_of(offline))
    assert [r[0] for r in outages(hub, "drive")] == ["clean_shutdown"]

    again = start_edge(hub, "drive")
    with running(again):
        online = sendgrid.wait_for(of_kind("online", "drive"), 30).json
        assert_addressed(online)
        assert "back online" in online["subject"].lower()
        assert re.search(r"\d+ s", online["subject"]), online["subject"]
        assert ISO_TIME.search(body_of(online))
        reason, started, ended = outages(hub, "drive")[0]
        assert reason == "clean_shutdown" and ended is not None and ended >= started
    assert hub.stop() == 0, hub.output[-3000:]
    assert [r[0] for r in alert_rows(hub, "new_camera")] == ["sent"]
    # the second edge's clean stop at the end of the block is reported too
    assert [r[0] for r in alert_rows(hub, "offline")] == ["sent", "sent"]


def test_killed_edge_is_reported_as_connection_lost(hub_factory, sendgrid):
    hub = start_hub(hub_factory, sendgrid)
    edge = start_edge(hub, "gate")
    with running(edge):
        wait_for(lambda: segments(hub.db_path, "gate"), 30, "a first segment")
        killed_at = dt.datetime.now(dt.timezone.utc)
        edge.kill()
    offline = sendgrid.wait_for(of_kind("offline", "gate"), 30).json
    assert_addressed(offline)
    assert "connection" in offline["subject"].lower() and "lost" in offline["subject"].lower()
    assert "connection to the edge was lost" in body_of(offline)
    (reason, started, _), = outages(hub, "gate")
    assert reason == "connection_lost"
    assert abs((dt.datetime.fromisoformat(started).replace(tzinfo=dt.timezone.utc)
                - killed_at).total_seconds()) < 10
    assert hub.stop() == 0, hub.output[-3000:]


@pytest.fixture(scope="module")
def ts_bytes() -> bytes:
    """Two seconds of real H.264 in MPEG-TS."""
    return encoded_ts(2)



def open_stream(hub, camera: str, first: bytes) -> socket.socket:
    """Start an ingest request by hand and send ``first`` as its first chunk."""
    sock = socket.create_connection(("127.0.0.1", hub.port), timeout=10)
    head = (f"POST /ingest/v1/{camera} HTTP/1.1\r\nHost: hub\r\nContent-Type: video/mp2t\r\n"
            "Transfer-Encoding: chunked\r\nX-NVR-Location: shed\r\n\r\n").encode()
    sock.sendall(head + chunk(first))
    return sock


def test_edge_that_stays_connected_but_sends_nothing_is_reported_stalled(hub_factory, sendgrid,
                                                                          ts_bytes):
    hub = start_hub(hub_factory, sendgrid, config="stall_timeout = 3\n")
    sock = open_stream(hub, "shed", ts_bytes)
    try:
        offline = sendgrid.wait_for(of_kind("offline", "shed"), 30).json
    finally:
        sock.close()
    assert_addressed(offline)
    assert "stalled" in offline["subject"].lower()
    assert "stayed connected but sent nothing" in body_of(offline)
    assert [r[0] for r in outages(hub, "shed")] == ["stalled"]
    assert hub.stop() == 0, hub.output[-3000:]


def null_packets(count: int) -> bytes:
    """MPEG-TS null packets (PID 0x1FFF): valid transport stream that carries no frames."""
    return (b"\x47\x1f\xff\x10" + b"\xff" * 184) * count


def test_stream_without_new_segments_is_restarted_and_reported(hub_factory, sendgrid, ts_bytes):
    # The edge keeps sending, but nothing ffmpeg can cut a segment from: the health check
    # restarts ffmpeg after 2 x segment + margin and says so.
    hub = start_hub(hub_factory, sendgrid, config="stall_margin = 2\nhealth_interval = 0.5\n")
    sock = open_stream(hub, "attic", ts_bytes)
    try:
        deadline = time.monotonic() + 40
        stalled = None
        while stalled is None and time.monotonic() < deadline:
            sock.sendall(chunk(null_packets(50)))
            stalled = next((m for m in sendgrid.accepted if of_kind("stalled", "attic")(m.json)),
                           None)
            time.sleep(0.2)  # the pace of a slow camera; the loop ends on the alert
        assert stalled is not None, hub.output[-3000:]
    finally:
        sock.close()
    assert_addressed(stalled.json)
    assert "attic" in stalled.json["subject"] and "restarted" in body_of(stalled.json).lower()
    assert "restarting ffmpeg" in hub.output
    assert hub.stop() == 0, hub.output[-3000:]


def test_low_disk_is_emailed_with_the_free_space(hub_factory, sendgrid):
    # Every real disk has less than 99.99 % free, so the threshold trips at once.
    hub = hub_factory(config="[alerts]\ndisk_low_percent = 99.99\n", env=alert_env(sendgrid)).start()
    mail = sendgrid.wait_for(of_kind("disk_low"), 30).json
    assert_addressed(mail)
    assert "disk" in mail["subject"].lower()
    assert re.search(r"\d+(\.\d+)? GB free", body_of(mail)), body_of(mail)
    wait_for(lambda: [r[0] for r in alert_rows(hub, "disk_low")] == ["sent"], 10,
             "the alert row marked sent")
    assert alert_rows(hub, "disk_low")[0][2] is None
    assert hub.stop() == 0, hub.output[-3000:]


def segment_arrivals(hub, camera: str) -> list[dt.datetime]:
    """When each of a camera's segments was cataloged, in order."""
    with sqlite3.connect(hub.db_path, timeout=10) as conn:
        rows = conn.execute("SELECT s.created_at FROM segments s JOIN cameras c ON c.id ="
                            " s.camera_id WHERE c.name = ? ORDER BY s.id", (camera,)).fetchall()
    return [dt.datetime.fromisoformat(r[0]) for r in rows]


@pytest.mark.parametrize("failure", ["error", "hang"])
def test_sendgrid_failing_delays_no_segment_and_the_alert_arrives_after_a_retry(
        hub_factory, sendgrid, failure):
    hub = start_hub(hub_factory, sendgrid)
    pusher = ffmpeg_pusher(hub.url("steady"), size="320x240", rate=15)
    with running(pusher):
        wait_for(lambda: len(segments(hub.db_path, "steady")) >= 2, 30, "steady recording")
        sendgrid.mode = failure
        before = len(segment_arrivals(hub, "steady"))
        edge = start_edge(hub, "flaky")
        with running(edge):
            wait_for(lambda: len(sendgrid.requests) >= 2, 30, "SendGrid being tried twice")
        # SendGrid failed (or hung) through several attempts: the steady camera kept recording
        wait_for(lambda: len(segment_arrivals(hub, "steady")) >= before + 4, 30,
                 "segments while SendGrid fails")
        arrivals = segment_arrivals(hub, "steady")[before - 1:]
        gaps = [(b - a).total_seconds() for a, b in zip(arrivals, arrivals[1:])]
        assert max(gaps) < hub.segment_seconds + 1.5, gaps
        sendgrid.mode = "ok"
        mail = sendgrid.wait_for(of_kind("new_camera", "flaky"), 30).json
        assert_addressed(mail)
        wait_for(lambda: [r[0] for r in alert_rows(hub, "new_camera") if r[2] == "flaky"] == ["sent"],
                 10, "the alert row marked sent")
    assert hub.stop() == 0, hub.output[-3000:]
    (status, attempts, _, _), = [r for r in alert_rows(hub, "new_camera") if r[2] == "flaky"]
    assert status == "sent" and attempts >= 2


def test_a_hub_crash_is_an_outage_not_an_email_and_a_camera_that_never_returns_is(hub_factory,
                                                                                  sendgrid):
    hub = start_hub(hub_factory, sendgrid, config="stall_margin = 1\n")
    edge = start_edge(hub, "porch")
    with running(edge):
        wait_for(lambda: segments(hub.db_path, "porch"), 30, "a first segment")
        sendgrid.wait_for(of_kind("new_camera", "porch"), 30)
        wait_for(lambda: camera_online(hub, "porch"), 10, "the status row saying online")
        hub.process.kill()  # a crash: no clean shutdown, no outage written
        edge.kill()  # ... and the camera does not come back either
    hub.start()
    mail = sendgrid.wait_for(of_kind("offline", "porch"), 30).json
    assert "did not reconnect" in body_of(mail)
    (reason, _, ended), = outages(hub, "porch")
    assert reason == "hub_stopped" and ended is None
    again = start_edge(hub, "porch")
    with running(again):
        sendgrid.wait_for(of_kind("online", "porch"), 30)
        wait_for(lambda: outages(hub, "porch")[0][2] is not None, 10, "the outage closed")
    assert hub.stop() == 0, hub.output[-3000:]


def camera_online(hub, camera: str) -> bool:
    """What the hub's last status row says of a camera."""
    with sqlite3.connect(hub.db_path, timeout=10) as conn:
        row = conn.execute("SELECT s.online FROM camera_status s JOIN cameras c ON c.id ="
                           " s.camera_id WHERE c.name = ?", (camera,)).fetchone()
    return bool(row and row[0])
