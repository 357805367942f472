"""v2: acks empty the spool, an outage is spooled and back-filled, v1 hubs still work."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge.backfill import Pacer
from edge.backoff import Backoff
from edge.cli import StreamConfig
from edge.errors import HubClosed
from edge.sources import parse_source
from edge.spool import Spool
from edge.stream import StreamWorker
from edge.uplink import HubAddress, HubConnection
from tests.edge.fakehub import TOKEN, IngestServer, decode_ts, wait_until
from tests.edge.test_uplink import free_port

CONFIG = StreamConfig("porch", parse_source("test"), fps=15, width=320, height=240,
                      bitrate=300_000)


def fast_backoff() -> Backoff:
    return Backoff(initial=0.05, maximum=0.2, rng=random.Random(0))


@pytest.fixture
def run_worker(tmp_path: Path) -> Iterator[Callable[..., StreamWorker]]:
    """Start StreamWorkers with a spool in tmp_path; each is stopped and joined at the end."""
    started: list[StreamWorker] = []

    def start(port: int, spool_bytes: int = 10**9, **kwargs: object) -> StreamWorker:
        # the fake hub speaks versions 1 and 2 (version 3: tests/e2e/test_edge_direct.py)
        hub = HubAddress("127.0.0.1", port, TOKEN, "front yard", protocol=2)
        spool = Spool(tmp_path / "spool" / CONFIG.name, spool_bytes, file_seconds=1.0,
                      fps=CONFIG.fps)
        kwargs.setdefault("backoff", fast_backoff())
        worker = StreamWorker(CONFIG, hub, threading.Event(), spool=spool,
                              backfill_rate=50_000_000, **kwargs)
        worker.start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop.set()
        worker.join(20)
        assert not worker.is_alive()


def live(server: IngestServer) -> list:
    return [r for r in server.requests if r.mode == "live"]


def backfills(server: IngestServer) -> list:
    return [r for r in server.requests if r.mode == "backfill"]


def test_v2_acks_delete_spooled_footage_as_the_hub_makes_it_durable(
    ingest_server: Callable[..., IngestServer], run_worker: Callable[..., StreamWorker]
) -> None:
    server = ingest_server(v2=True, ack_seconds=1.0)
    worker = run_worker(server.port)
    wait_until(lambda: server.requests and len(server.requests[0].acks) >= 4, 15, "four acks")
    [request] = server.requests
    assert request.headers["x-nvr-protocol"] == "2" and request.headers["x-nvr-spool"] == "1"
    # The spool holds only what is not acknowledged yet: the newest second or two.
    wait_until(lambda: worker.spool.pending_seconds() <= 2.0, 5, "the spool to follow acks")
    assert worker.sender.hub_v2 and not backfills(server)
    worker.stop.set()
    worker.join(15)
    assert request.ended == "done" and worker.spool.files() == []


def test_an_outage_is_spooled_and_backfilled_once_the_live_stream_is_back(
    ingest_server: Callable[..., IngestServer], run_worker: Callable[..., StreamWorker],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="edge")
    port = free_port()
    worker = run_worker(port)
    wait_until(lambda: worker.spool.pending_seconds() >= 3.0, 15, "3 s spooled while down")
    server = ingest_server(port=port, v2=True, ack_seconds=0.5)
    wait_until(lambda: backfills(server) and backfills(server)[0].ended == "done", 20,
               "a finished backfill")
    [first_live] = live(server)[:1]
    backfill = backfills(server)[0]
    assert backfill.headers["x-nvr-backfill-id"]
    # One timeline: the backfill and the live request share the epoch; the backfill holds
    # what came before the live request's first frame, starting at a keyframe.
    assert backfill.headers["x-nvr-stream-epoch"] == first_live.headers["x-nvr-stream-epoch"]
    _, _, pts, keys = decode_ts(backfill.body_path)
    _, _, live_pts, _ = decode_ts(first_live.body_path)
    assert pts[0] == keys[0] < 90 and pts[-1] < live_pts[0]
    # Nothing between: the live request starts one frame after the backfill's last frame (PTS
    # follow the capture clock: a capture late under load stretches that one interval, so the
    # junction is held to the longest frame interval inside the two requests, or 3 frames).
    longest = max(b - a for a, b in zip([*pts, *live_pts[:15]], [*pts[1:], *live_pts[1:16]])
                  if b > a)
    assert live_pts[0] - pts[-1] <= max(3 * 6000, longest) and live_pts[0] / 90_000 >= 3.0
    wait_until(lambda: worker.spool.pending_seconds() <= 2.0, 10, "the spool to drain")
    assert live(server)[0].started_before(backfill)
    # the uploader logs after its final acknowledgement, which may come after the drain
    wait_until(lambda: "backfilled" in caplog.text, 10, "the backfill to be logged")


def test_a_hub_that_closes_the_stream_gets_a_new_request_and_the_gap_backfilled(
    ingest_server: Callable[..., IngestServer], run_worker: Callable[..., StreamWorker]
) -> None:
    server = ingest_server(v2=True, ack_seconds=5.0, close_after=1.5)
    run_worker(server.port)
    wait_until(lambda: len(live(server)) >= 2 and backfills(server)
               and backfills(server)[0].ended == "done", 20,
               "a second live request and a finished backfill")
    first = live(server)[0]
    assert first.ended == "closed"
    _, _, pts, _ = decode_ts(backfills(server)[0].body_path)
    _, _, first_pts, _ = decode_ts(first.body_path)
    assert pts[0] == first_pts[0]  # what the closed request never got acked goes again


def test_a_v1_hub_still_records_and_the_spool_waits_for_a_clean_end(
    ingest_server: Callable[..., IngestServer], run_worker: Callable[..., StreamWorker],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="edge")
    server = ingest_server()  # a stock v1 hub: no early answer, 501 for backfill
    worker = run_worker(server.port, accepted_after=0.5)
    wait_until(lambda: worker.spool.pending_seconds() >= 3.0, 15, "3 s streamed")
    assert "sends no acknowledgements (protocol v1)" in caplog.text
    assert not worker.sender.hub_v2 and len(server.requests) == 1
    worker.stop.set()
    worker.join(15)
    [request] = server.requests
    assert request.complete and request.status == 200
    assert worker.spool.files() == []  # the final 200 of a clean end acks it all


def test_a_v1_hub_refuses_backfill_and_the_spool_keeps_it(
    ingest_server: Callable[..., IngestServer], run_worker: Callable[..., StreamWorker],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="edge")
    port = free_port()
    worker = run_worker(port, accepted_after=0.5)
    wait_until(lambda: worker.spool.pending_seconds() >= 2.0, 15, "2 s spooled while down")
    server = ingest_server(port=port)
    wait_until(lambda: backfills(server), 15, "a backfill try")
    wait_until(lambda: "hub takes no backfill" in caplog.text, 5, "the log")
    assert backfills(server)[0].status == 501 and worker.spool.pending_seconds() >= 2.0


def test_spool_overflow_is_reported_to_the_hub_once(
    ingest_server: Callable[..., IngestServer], run_worker: Callable[..., StreamWorker]
) -> None:
    port = free_port()
    worker = run_worker(port, spool_bytes=150_000)
    wait_until(lambda: worker.spool.dropped_total >= 2.0, 30, "2 s dropped")
    server = ingest_server(port=port, v2=True, ack_seconds=0.5, close_after=2.0)
    wait_until(lambda: len(live(server)) >= 2, 15, "a second live request")
    first, second = live(server)[:2]
    dropped = float(first.headers["x-nvr-spool-dropped"])
    assert 2.0 <= dropped <= worker.spool.dropped_total + 0.001  # sent with 3 decimals
    # Each dropped second is reported once: the reports never add up to more than was dropped.
    reported = sum(float(r.headers.get("x-nvr-spool-dropped", 0)) for r in (first, second))
    assert reported <= worker.spool.dropped_total + 0.002


def test_connection_reads_acks_while_sending_and_done_at_the_end(
    ingest_server: Callable[..., IngestServer], tmp_path: Path
) -> None:
    from tests.edge.test_encoder import SETTINGS
    from edge.capture import SyntheticSource
    from edge.encoder import Encoder

    server = ingest_server(v2=True, ack_seconds=0.5)
    acks: list[float] = []
    source = SyntheticSource(SETTINGS.width, SETTINGS.height, SETTINGS.fps)
    encoder = Encoder(SETTINGS, start_monotonic=0.0)
    with HubConnection(HubAddress("127.0.0.1", server.port, TOKEN), "porch", epoch=time.time(),
                       on_ack=acks.append) as conn:
        for i in range(30):
            conn.send(encoder.encode(source.render(i), i / 15))
            time.sleep(0.01)
        wait_until(lambda: (conn.poll(), acks)[1], 5, "an ack")
        assert conn.protocol == 2
        response = conn.finish(5)
    encoder.close()
    assert response.status == 200 and response.done and response.done["done"] is True
    assert acks == sorted(acks) and acks[0] >= 0.5


def test_a_closed_line_ends_the_request_with_hub_closed(
    ingest_server: Callable[..., IngestServer]
) -> None:
    server = ingest_server(v2=True, close_after=0.2)
    with HubConnection(HubAddress("127.0.0.1", server.port, TOKEN), "porch",
                       epoch=time.time()) as conn:
        with pytest.raises(HubClosed, match="test hub closes"):
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                conn.send(b"\x47" + bytes(187))
                time.sleep(0.01)


def test_pacer_spreads_bytes_at_the_rate() -> None:
    now = [0.0]
    pacer = Pacer(1000.0, clock=lambda: now[0])
    assert pacer.delay(500) == 0.0
    assert pacer.delay(500) == pytest.approx(0.5)
    now[0] = 10.0  # idle time is not saved up as a burst
    assert pacer.delay(1000) == 0.0 and pacer.delay(1) == pytest.approx(1.0)


def test_a_new_timeline_ends_the_request_cleanly_and_starts_the_next_at_pts_zero(
    ingest_server: Callable[..., IngestServer], run_worker: Callable[..., StreamWorker]
) -> None:
    server = ingest_server(v2=True, ack_seconds=0.5)
    worker = run_worker(server.port, max_request_seconds=1.5)  # stands in for the 12 h limit
    wait_until(lambda: len(live(server)) >= 3, 15, "three live requests")
    first, second = live(server)[:2]
    assert first.ended == "done"
    assert float(second.headers["x-nvr-stream-epoch"]) > float(first.headers["x-nvr-stream-epoch"])
    _, _, pts, keys = decode_ts(second.body_path)
    assert pts[0] == keys[0] < 90 and pts[-1] <= 1.6 * 90_000
    assert not backfills(server)  # a clean end: its "done" acked everything it carried
    assert all(f.epoch_ms >= round(float(second.headers["x-nvr-stream-epoch"]) * 1000)
               for f in worker.spool.files())


def test_the_live_queue_drops_the_request_when_the_link_falls_10_s_behind(
    tmp_path: Path,
) -> None:
    from edge.encoder import Chunk
    from edge.tap import END, LiveTap

    spool = Spool(tmp_path, 10**9)
    tap = LiveTap(spool, max_lag_seconds=10.0)
    tap.open()
    assert tap.keyframe_wanted()
    assert not tap.begin_if_wanted(1000, Chunk(b"p", 0, False))  # waits for a keyframe
    assert tap.begin_if_wanted(1000, Chunk(b"k", 6000, True))
    for i in range(1, 151):  # 10 s at 15 fps, nobody reading
        tap.offer(1000, Chunk(b"x", 6000 * i, i % 15 == 0))
    assert not tap.lagging
    tap.offer(1000, Chunk(b"x", 6000 * 152, False))
    assert tap.lagging and tap.get(0) is None  # the queue is gone: the spool has it all
    tap.end()
    assert tap.get(0) is END
    spool.close()


def test_a_v2_request_whose_acks_stop_is_dropped_and_its_footage_backfilled(
    ingest_server: Callable[..., IngestServer], run_worker: Callable[..., StreamWorker],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="edge")
    # The hub takes the bytes but its acks stop (a link that eats packets, or a stuck hub).
    server = ingest_server(v2=True, ack_seconds=0.5, ack_limit=2)
    run_worker(server.port, ack_timeout=2.0)
    wait_until(lambda: len(live(server)) >= 2, 15, "a second live request")
    assert "no acknowledgement from" in caplog.text
    wait_until(lambda: backfills(server) and backfills(server)[0].ended == "done", 10,
               "the unacknowledged footage sent again")
    _, _, pts, _ = decode_ts(backfills(server)[0].body_path)
    _, _, first_pts, _ = decode_ts(live(server)[0].body_path)
    assert first_pts[0] <= pts[0] <= first_pts[-1]  # what the dropped request carried
