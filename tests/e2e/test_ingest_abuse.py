"""Abuse of the ingest port, against a real hub over real sockets: forged footage under a
pulled camera's name, invented camera names, and trickles that would hold a name forever."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session

from nvrlib.catalog import db
from nvrlib.catalog.models import Camera
from tests.support.media import encoded_ts, segments
from tests.support.media import http_chunk as chunk
from tests.support.procs import ffmpeg_pusher, running, wait_for
from tests.support.sendgrid_stub import SendGridStub

pytestmark = pytest.mark.e2e

TOKEN = "s3cret-token"
DEAD_RTSP = "rtsp://127.0.0.1:9/stream"  # nothing listens: the pulls just back off


@pytest.fixture(scope="module")
def ts_bytes() -> bytes:
    """One second of real H.264 in MPEG-TS."""
    return encoded_ts(1)


def head(camera: str, token: str | None = None) -> bytes:
    """A chunked ingest request head."""
    lines = [f"POST /ingest/v1/{camera} HTTP/1.1", "Host: hub", "Content-Type: video/mp2t",
             "Transfer-Encoding: chunked"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def connect(port: int, source: str) -> socket.socket:
    """A TCP connection to the hub from a chosen loopback address."""
    return socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0))


def push(port: int, camera: str, body: bytes, source: str = "127.0.0.1",
         token: str | None = None) -> int:
    """Push a whole (short) stream and return the hub's final status."""
    with connect(port, source) as sock:
        try:
            sock.sendall(head(camera, token) + chunk(body) + b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered and closed before the body was read
        answer = b""
        while data := sock.recv(65536):
            answer += data
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split(b" ", 2)[1])


def push_runs(hub, camera: str) -> int:
    """How many ffmpeg runs recorded ``camera`` from a pushing edge (peer on 127.x)."""
    with sqlite3.connect(hub.db_path, timeout=10) as conn:
        return conn.execute("SELECT count(*) FROM runs r JOIN cameras c ON c.id = r.camera_id"
                            " WHERE c.name = ? AND r.peer LIKE '127.%'", (camera,)).fetchone()[0]


def cameras(hub) -> list[str]:
    """The names in the catalog's cameras table."""
    with sqlite3.connect(hub.db_path, timeout=10) as conn:
        return sorted(row[0] for row in conn.execute("SELECT name FROM cameras"))


def alert_statuses(hub, kind: str) -> list[str]:
    """The statuses of the hub's stored alerts of one kind, oldest first."""
    with sqlite3.connect(hub.db_path, timeout=10) as conn:
        return [r[0] for r in conn.execute("SELECT status FROM alerts WHERE kind = ? ORDER BY id",
                                           (kind,))]


# -- forged footage -----------------------------------------------------------------------------

@pytest.fixture
def pulling_hub(hub_factory) -> Iterator:
    """A hub that pulls 'gate' (config file) and 'garden' (added in the web app); 'shed' is a
    pulled camera of the web app that is disabled, so nothing pulls it right now."""
    hub = hub_factory(config=f'ingest_token = "{TOKEN}"\nallow_local_camera_urls = true\n'
                             f'[[cameras]]\nname = "gate"\n'
                             f'url = "{DEAD_RTSP}"\n')
    engine = db.make_engine(hub.db_url)
    try:
        db.upgrade(engine)
        with Session(engine) as session:
            session.add_all([Camera(name="garden", kind="pull", url=DEAD_RTSP),
                             Camera(name="shed", kind="pull", url=DEAD_RTSP, enabled=False)])
            session.commit()
    finally:
        engine.dispose()
    hub.start()
    hub.process.wait_line(r"garden: pulling")
    yield hub


@pytest.mark.parametrize("camera", ["gate", "garden", "shed"])
def test_a_push_to_a_pulled_cameras_name_is_refused_whatever_the_token(pulling_hub, ts_bytes,
                                                                       camera) -> None:
    hub = pulling_hub
    pusher = ffmpeg_pusher(hub.url(camera), seconds=3, token=TOKEN)  # a stock ffmpeg, right token
    with running(pusher):
        assert pusher.proc.wait(30) != 0
    hub.process.wait_line(rf"rejected: 409 camera {camera} is pulled by the hub, not pushed")
    assert push(hub.port, camera, ts_bytes, token=TOKEN) == 409
    if camera != "shed":  # pulled right now: refused before the token is even looked at
        assert push(hub.port, camera, ts_bytes, token="wrong") == 409
    assert push_runs(hub, camera) == 0 and segments(hub.db_path, camera) == []
    assert push(hub.port, "porch", ts_bytes, token=TOKEN) == 200  # pushed cameras still work


# -- invented names -----------------------------------------------------------------------------

def test_invented_camera_names_are_rate_limited_per_address_and_emailed_once(hub_factory,
                                                                              ts_bytes) -> None:
    with SendGridStub(api_key="SG.e2e") as sendgrid:
        hub = hub_factory(env={"SENDGRID_API_KEY": "SG.e2e", "SENDGRID_API_HOST": sendgrid.url,
                               "ALERT_EMAIL_TO": "owner@example.com",
                               "ALERT_EMAIL_FROM": "nvr@example.com"}).start()
        began = time.monotonic()
        statuses = [push(hub.port, f"fake{i:02d}", ts_bytes, source="127.0.0.66")
                    for i in range(20)]
        assert statuses == [200] * 3 + [429] * 17, statuses
        assert time.monotonic() - began < 30
        hub.process.wait_line(r"rejected: 429 too many new camera names from 127\.0\.0\.66")
        assert push(hub.port, "fake00", ts_bytes, source="127.0.0.66") == 200  # known by now
        assert push(hub.port, "porch", ts_bytes, source="127.0.0.7") == 200  # another address
        assert cameras(hub) == ["fake00", "fake01", "fake02", "porch"]

        wait_for(lambda: alert_statuses(hub, "new_camera") == ["sent"] * 3 + ["suppressed"], 10,
                 "3 new-camera alerts emailed, the 4th held for the summary")
        new_camera_mails = [r for r in sendgrid.accepted
                            if r.json["custom_args"]["kind"] == "new_camera"]
        assert len(new_camera_mails) == 3  # not 20: and the rest wait for one summary
        assert hub.stop() == 0
        assert alert_statuses(hub, "summary") in (["sent"], ["pending"])


# -- trickles -----------------------------------------------------------------------------------

STALL = 3.0


def null_packet() -> bytes:
    """An MPEG-TS null packet (PID 0x1FFF): padding, no picture."""
    return b"\x47\x1f\xff\x10" + b"\xff" * 184


class Trickle(threading.Thread):
    """Holds a camera's name with a trickle of packets until the hub closes the connection."""

    def __init__(self, port: int, camera: str, first: bytes, packet: bytes, every: float) -> None:
        super().__init__(daemon=True)
        self.sock = connect(port, "127.0.0.9")
        self.sock.sendall(head(camera) + chunk(first))
        self.packet, self.every = packet, every
        self.closed_after: float | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        began = time.monotonic()
        try:
            while not self.stop.wait(self.every):
                self.sock.sendall(chunk(self.packet))
        except OSError:
            self.closed_after = time.monotonic() - began

    def close(self) -> None:
        self.stop.set()
        self.sock.close()
        self.join(10)


def test_an_edge_with_the_shared_token_brings_up_many_new_cameras_at_once(hub_factory,
                                                                         ts_bytes) -> None:
    hub = hub_factory(config=f'ingest_token = "{TOKEN}"\n').start()
    statuses = [push(hub.port, f"cam{i:02d}", ts_bytes, token=TOKEN, source="127.0.0.67")
                for i in range(6)]
    assert statuses == [200] * 6, statuses
    assert push(hub.port, "intruder", ts_bytes, token="wrong", source="127.0.0.67") == 401


@pytest.mark.parametrize(("what", "every"), [("null packets", 0.2), ("a packet now and then",
                                                                     0.8 * STALL)])
def test_a_trickle_without_real_video_is_dropped_as_stalled_and_frees_the_name(
        hub_factory, ts_bytes, what, every) -> None:
    hub = hub_factory(config=f"stall_timeout = {STALL:g}\n").start()
    first = ts_bytes[:3 * 188]  # PAT, PMT and the start of a picture: it looks like a camera
    video_packet = next(ts_bytes[i:i + 188] for i in range(0, len(ts_bytes), 188)
                        if ts_bytes[i + 1] & 0x1F == 0x01)  # an H.264 packet (PID 0x100)
    packet = null_packet() if what == "null packets" else video_packet
    trickle = Trickle(hub.port, "porch", first, packet, every)
    trickle.start()
    try:
        hub.process.wait_line(r"porch: edge 127\.0\.0\.9:\d+ connected")
        assert push(hub.port, "porch", ts_bytes) == 409  # the trickle holds the name ...
        # the window is 3 s, but the check runs on the next batch tick: "in 3 s" or "in 4 s"
        hub.process.wait_line(r"porch: edge 127\.0\.0\.9:\d+ sent \d+ bytes of video in \d+ s "
                              r"\(less than 2048; stalled\)", 2 * STALL + 5)
        hub.process.wait_line(r"porch: offline \(stalled\)")
        wait_for(lambda: trickle.closed_after is not None or not trickle.is_alive(), 2 * STALL,
                 "the trickling client to notice")
    finally:
        trickle.close()
    pusher = ffmpeg_pusher(hub.url("porch"), seconds=4)  # ... until the hub drops it
    with running(pusher):
        assert pusher.proc.wait(30) == 0, pusher.output
    wait_for(lambda: segments(hub.db_path, "porch"), 15, "the real edge's footage")
    assert hub.stop() == 0
