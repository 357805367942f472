"""Bad input on the ingest port is rejected clearly, loses nothing, and disturbs no stream."""

from __future__ import annotations

import socket

import pytest

from tests.support.media import decode_fully, encoded_ts, segments
from tests.support.media import http_chunk as chunk
from tests.support.procs import ffmpeg_pusher, running, wait_for

TOKEN = "s3cret-token"
CONFIG = f"""
ingest_token = "{TOKEN}"
allow_new_cameras = false
stall_timeout = 2
[[cameras]]
name = "steady"
location = "yard"
[[cameras]]
name = "stall"
[[cameras]]
name = "cut"
[[cameras]]
name = "off"
enabled = false
"""


@pytest.fixture(scope="module")
def ts_bytes() -> bytes:
    """Four seconds of real H.264 in MPEG-TS, as an encoder would send it."""
    return encoded_ts(4)


def request_head(camera: str, token: str | None = TOKEN, method: str = "POST",
                 path: str | None = None) -> bytes:
    """An ingest request head with a chunked body to follow."""
    lines = [f"{method} {path or '/ingest/v1/' + camera} HTTP/1.1", "Host: hub",
             "Content-Type: video/mp2t", "Transfer-Encoding: chunked"]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()



def exchange(port: int, payload: bytes, timeout: float = 10.0) -> bytes:
    """Send bytes, then read the hub's answer until it closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the hub may answer and close before reading everything
        return read_all(sock)


def read_all(sock: socket.socket) -> bytes:
    """Read until EOF (or a reset after the answer)."""
    received = b""
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return received
        if not data:
            return received
        received += data


def status_of(answer: bytes) -> int:
    """The status code of a raw HTTP answer."""
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split(b" ", 2)[1])


@pytest.fixture(scope="module")
def busy_hub(tmp_path_factory):
    """A hub with one healthy stream ('steady') running through every bad-input test."""
    from tests.support.procs import Hub

    hub = Hub(tmp_path_factory.mktemp("badinput"), config=CONFIG, segment_seconds=2).start()
    pusher = ffmpeg_pusher(hub.url("steady"), token=TOKEN)
    try:
        with running(pusher):
            wait_for(lambda: segments(hub.db_path, "steady"), 30, "the steady stream's first segment")
            yield hub
            assert pusher.proc.poll() is None, "the healthy stream was disturbed:\n" + pusher.output
            # the module's tests can end within 10 s: record on until the check has 5 segments
            wait_for(lambda: len(segments(hub.db_path, "steady")) >= 5, 30,
                     "five segments of the steady stream")
    finally:
        hub.stop()
        for run in hub.runs:
            run.kill_group()
    check_steady_stream_intact(hub)


def check_steady_stream_intact(hub) -> None:
    """The healthy stream's segments tile time, decode, and came from one connection."""
    rows = segments(hub.db_path, "steady")
    assert len(rows) >= 5
    for before, after in zip(rows, rows[1:]):
        gap = (after.start - before.end).total_seconds()
        assert abs(gap) <= 0.041, f"gap of {gap:.3f} s between {before.path} and {after.path}"
    for row in rows:
        assert decode_fully(hub.storage / row.path).errors == 0


@pytest.mark.parametrize("garbage", [
    b"\x00\xff" * 500,
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"HELLO\r\n\r\n",
    b"POST /ingest/v1/steady HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
])
def test_garbage_on_the_socket_gets_an_error_status(busy_hub, garbage):
    answer = exchange(busy_hub.port, garbage)
    assert status_of(answer) in (400, 404, 405)


@pytest.mark.parametrize(("camera", "path", "expected"), [
    ("..", "/ingest/v1/..", 400),
    ("bad%name", "/ingest/v1/bad%25name", 400),
    ("-flag", "/ingest/v1/-flag", 400),
    ("a/b", "/ingest/v1/a%2Fb", 400),
    ("long", "/ingest/v1/" + "x" * 65, 400),
    ("ctl", "/ingest/v1/bad%0Aname", 400),
    ("stranger", None, 404),
    ("off", None, 423),
])
def test_bad_or_unknown_camera_is_rejected(busy_hub, ts_bytes, camera, path, expected):
    answer = exchange(busy_hub.port, request_head(camera, path=path) + chunk(ts_bytes[:4096]))
    assert status_of(answer) == expected, answer


@pytest.mark.parametrize("token", [None, "wrong"])
def test_wrong_or_missing_token_is_rejected_and_logged(busy_hub, ts_bytes, token):
    answer = exchange(busy_hub.port, request_head("stall", token=token) + chunk(ts_bytes[:4096]))
    assert status_of(answer) == 401
    busy_hub.process.wait_line(r"rejected: 401 .* bearer token for camera stall")
    assert "wrong" not in busy_hub.output.replace("a wrong bearer", "")


def test_body_that_is_not_mpegts_is_rejected(busy_hub):
    answer = exchange(busy_hub.port, request_head("stall") + chunk(b"not a transport stream" * 100))
    assert status_of(answer) == 415


def test_second_connection_for_a_streaming_camera_is_rejected(busy_hub, ts_bytes):
    answer = exchange(busy_hub.port, request_head("steady") + chunk(ts_bytes[:4096]))
    assert status_of(answer) == 409
    assert b"already streaming" in answer


def test_stalled_client_is_dropped_and_its_footage_kept(busy_hub, ts_bytes):
    cut = (len(ts_bytes) * 3 // 4) // 188 * 188 + 77  # mid-packet
    with socket.create_connection(("127.0.0.1", busy_hub.port), timeout=15) as sock:
        sock.sendall(request_head("stall") + chunk(ts_bytes[:cut]))
        assert read_all(sock) == b"", "a stalled stream gets no answer, just a close"
    busy_hub.process.wait_line(r"stall: edge .* sent nothing for 2 s \(stalled\)")
    rows = wait_for(lambda: segments(busy_hub.db_path, "stall"), 15, "the stalled stream's footage")
    recorded = sum(r.duration for r in rows)
    assert recorded >= 2.0, rows
    for row in rows:
        assert decode_fully(busy_hub.storage / row.path).errors == 0


def test_client_that_disconnects_mid_packet_keeps_its_footage(busy_hub, ts_bytes):
    cut = (len(ts_bytes) * 3 // 4) // 188 * 188 + 100
    with socket.create_connection(("127.0.0.1", busy_hub.port), timeout=15) as sock:
        sock.sendall(request_head("cut") + f"{cut + 500:x}\r\n".encode() + ts_bytes[:cut])
    busy_hub.process.wait_line(r"cut: edge .* (disconnected|broken stream)")
    rows = wait_for(lambda: segments(busy_hub.db_path, "cut"), 15, "the cut stream's footage")
    assert sum(r.duration for r in rows) >= 2.0
    for row in rows:
        assert decode_fully(busy_hub.storage / row.path).errors == 0
