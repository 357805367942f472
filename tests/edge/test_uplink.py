"""The uplink speaks protocol.md to a real h11 server, and rides out rejections and outages."""

from __future__ import annotations

import logging
import random
import select
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from edge.backoff import Backoff, Outage
from edge.cli import StreamConfig
from edge.errors import HubRejected, HubUnreachable
from edge.sources import parse_source
from edge.stream import StreamWorker
from edge.uplink import HubAddress, HubConnection
from tests.edge.fakehub import TOKEN, IngestServer, decode_ts, wait_until
from tests.support.procs import free_port

CONFIG = StreamConfig("porch", parse_source("test"), fps=30, width=320, height=240,
                      bitrate=300_000)


@pytest.fixture
def run_worker() -> Iterator[Callable[..., StreamWorker]]:
    """Start StreamWorkers; each is stopped and joined at the end of the test."""
    started: list[tuple[StreamWorker, threading.Event]] = []

    def start(port: int, token: str = TOKEN, protocol: int = 2, **kwargs: object) -> StreamWorker:
        stop = threading.Event()
        # the fake hub speaks versions 1 and 2 (version 3: tests/e2e/test_edge_direct.py)
        hub = HubAddress("127.0.0.1", port, token, "front yard", protocol=protocol)
        worker = StreamWorker(CONFIG, hub, stop, **kwargs)
        worker.start()
        started.append((worker, stop))
        return worker

    yield start
    for worker, stop in started:
        stop.set()
        worker.join(10)
        assert not worker.is_alive()


def fast_backoff() -> Backoff:
    return Backoff(initial=0.02, maximum=0.1, rng=random.Random(0))


def test_stream_is_a_chunked_post_with_the_protocol_headers(
    ingest_server: Callable[..., IngestServer], run_worker: Callable[..., StreamWorker]
) -> None:
    server = ingest_server()
    before = time.time()
    worker = run_worker(server.port)
    wait_until(lambda: server.total_bytes() > 20_000, 10, "TS bytes at the server")
    worker.stop.set()
    worker.join(10)
    [request] = server.requests
    assert (request.method, request.target) == ("POST", "/ingest/v1/porch")
    headers = request.headers
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert headers["content-type"] == "video/mp2t"
    assert headers["transfer-encoding"] == "chunked"
    assert headers["host"] == f"127.0.0.1:{server.port}"
    assert headers["x-nvr-location"] == "front yard"
    assert headers["x-nvr-protocol"] == "2" and headers["x-nvr-mode"] == "live"
    # Stopping finishes the request: final zero chunk sent, the hub's 200 read.
    assert request.complete and request.status == 200
    fmt, codec, pts, keys = decode_ts(request.body_path)
    # A live request starts at a keyframe of the encoder's running timeline, whose PTS 0 is
    # the epoch instant.
    assert (fmt, codec) == ("mpegts", "h264") and pts[0] == keys[0] and len(pts) > 10
    first_frame_wall = float(headers["x-nvr-stream-epoch"]) + pts[0] / 90_000
    assert before - 0.01 <= first_frame_wall <= time.time()


@pytest.mark.parametrize("refuse_v3", [True, False], ids=["400", "empty-request"])
def test_a_hub_that_does_not_take_version_3_gets_version_2_after_one_try(
    ingest_server: Callable[..., IngestServer], run_worker: Callable[..., StreamWorker],
    caplog: pytest.LogCaptureFixture, refuse_v3: bool,
) -> None:
    # a hub that cannot take version 3 answers its head 400; an older one takes the head (no
    # body) as an empty request and answers 200. Either way the edge says so once and streams
    # with version 2 from then on.
    server = ingest_server(refuse_v3=refuse_v3)
    worker = run_worker(server.port, protocol=3)
    wait_until(lambda: server.total_bytes() > 20_000, 10, "TS bytes at the server")
    worker.stop.set()
    worker.join(10)
    tried, streamed = server.requests
    assert tried.headers["x-nvr-protocol"] == "3" and tried.bytes == 0
    assert tried.status == (400 if refuse_v3 else 200)
    assert streamed.headers["x-nvr-protocol"] == "2" and streamed.complete
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "does not take protocol version 3" in warnings[0], warnings


def test_rejection_is_logged_once_per_outage_and_retried(
    ingest_server: Callable[..., IngestServer],
    run_worker: Callable[..., StreamWorker],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="edge")
    server = ingest_server()
    run_worker(server.port, token="wrong", backoff=fast_backoff())
    wait_until(lambda: len(server.requests) >= 4, 10, "four tries")
    assert all(r.status == 401 for r in server.requests if r.status)
    starts = [r for r in caplog.records if "unreachable, retrying" in r.getMessage()]
    assert len(starts) == 1
    assert starts[0].levelno == logging.ERROR  # 401 is a configuration error
    assert "401 Unauthorized: bad bearer token" in starts[0].getMessage()
    assert TOKEN not in caplog.text and "wrong" not in caplog.text


def test_outage_end_is_logged_with_its_length_once_the_hub_accepts(
    ingest_server: Callable[..., IngestServer],
    run_worker: Callable[..., StreamWorker],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="edge")
    port = free_port()
    worker = run_worker(port, backoff=fast_backoff(), accepted_after=0.3)
    wait_until(lambda: "retrying" in caplog.text, 10, "the outage to be logged")
    server = ingest_server(port=port, reject=503, reject_first=2)  # refused, then 503, then OK
    wait_until(lambda: "reachable again" in caplog.text, 10, "the recovery to be logged")
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("edge.stream")]
    assert sum("unreachable, retrying" in m for m in messages) == 1
    assert sum("still unreachable" in m for m in messages) == 1  # 503 is a new cause
    [recovery] = [m for m in messages if "reachable again" in m]
    assert "outage of" in recovery
    assert len(server.requests) == 3 and worker.is_alive()


def test_early_rejection_is_seen_while_sending(
    ingest_server: Callable[..., IngestServer]
) -> None:
    server = ingest_server()
    hub = HubAddress("127.0.0.1", server.port, "wrong")
    with HubConnection(hub, "porch", epoch=time.time()) as conn:
        wait_until(lambda: server.requests and server.requests[0].status, 5, "the 401")
        # the answer may still be on its way through loopback on a loaded machine
        wait_until(lambda: select.select([conn._sock], [], [], 0)[0], 5, "the 401 to arrive")
        with pytest.raises(HubRejected) as exc:
            conn.send(b"\x47" + bytes(187))
    assert exc.value.status == 401 and exc.value.is_config_error
    assert exc.value.detail == "bad bearer token"


def test_refused_connection_raises_hub_unreachable() -> None:
    with pytest.raises(HubUnreachable, match="cannot connect"):
        HubConnection(HubAddress("127.0.0.1", free_port()), "porch", epoch=0.0)


def test_backoff_doubles_from_half_a_second_to_thirty_with_jitter() -> None:
    backoff = Backoff(rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(10)]
    bases = [0.5, 1, 2, 4, 8, 16, 30, 30, 30, 30]
    assert all(0.8 * b <= d <= 1.2 * b for d, b in zip(delays, bases))
    assert len({round(d / b, 6) for d, b in zip(delays, bases)}) > 1  # jitter varies
    assert 24 <= Backoff().next_delay(at_maximum=True) <= 36
    backoff.reset()
    assert backoff.next_delay() <= 0.6


def test_outage_logs_start_and_end_once(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    outage = Outage(logging.getLogger("edge.test"), "hub", clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="edge.test"):
        for _ in range(5):
            outage.failed("connection refused")
            now[0] += 2
        outage.recovered()
        outage.recovered()
    assert [r.getMessage() for r in caplog.records] == [
        "hub unreachable, retrying: connection refused",
        "hub reachable again after an outage of 10.0 s",
    ]


def test_long_streams_start_a_new_request_that_begins_at_pts_zero(
    ingest_server: Callable[..., IngestServer], run_worker: Callable[..., StreamWorker]
) -> None:
    server = ingest_server()
    run_worker(server.port, max_request_seconds=0.5)  # stands in for the 12 h limit
    wait_until(lambda: len(server.requests) >= 3, 10, "three requests")
    first, second = server.requests[:2]
    assert first.complete and first.status == 200
    assert float(second.headers["x-nvr-stream-epoch"]) > float(first.headers["x-nvr-stream-epoch"])
    _, _, pts, keys = decode_ts(second.body_path)
    # PTS 0 is the epoch instant (whole ms); the first frame comes within that ms.
    assert pts[0] == keys[0] < 90 and pts[-1] <= 0.6 * 90_000


@pytest.mark.parametrize("answer", [b"NOT HTTP AT ALL\r\n\r\n", b"\x00\xff" * 64,
                                    b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"])
def test_garbage_from_the_hub_is_hub_unreachable_while_sending(answer: bytes) -> None:
    """A peer that answers garbage mid-stream is a clear error, read without blocking the send."""
    import socket
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)  # the request head
            conn.sendall(answer)
            conn.settimeout(5)
            try:
                while conn.recv(65536):
                    pass
            except OSError:
                pass

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        with HubConnection(HubAddress("127.0.0.1", port, None, "yard"), "porch", time.time()) as c:
            deadline = time.monotonic() + 10
            with pytest.raises(HubUnreachable, match="127.0.0.1"):
                while time.monotonic() < deadline:
                    c.send(b"G" * 1000)
                    time.sleep(0.01)
    finally:
        listener.close()
        server.join(10)
