"""Ingest protocol v2 end to end: a real hub, real ffmpeg, a v2 client written from the spec.

Live requests get acks whose durable_pts match what the catalog holds; a backfill upload
lands in its true time slot marked backfilled, is acknowledged, and is not cataloged twice.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time

import pytest

from recorder.ingest.protocol import TICK
from tests.support.ackclient import AckClient
from tests.support.media import decode_fully, encoded_ts, segments
from tests.support.procs import ffmpeg_pusher, running, wait_for

pytestmark = pytest.mark.e2e

UTC = dt.timezone.utc
FPS = 25


@pytest.fixture(scope="module")
def clip() -> bytes:
    """12 s of H.264 in MPEG-TS, PTS from ~1.4 s (ffmpeg's mpegts start), 1 s GOPs."""
    return encoded_ts(12, rate=FPS)


def expected_ack(hub, row, epoch: float) -> float:
    """The durable_pts a segment earns: its last frame's PTS (request timeline) plus a tick."""
    decoded = decode_fully(hub.storage / row.path)
    start = (row.start - dt.datetime.fromtimestamp(epoch, UTC)).total_seconds()
    last_frame = start + decoded.duration - 1 / FPS
    return last_frame + TICK


def push_v2(hub, camera: str, data: bytes, epoch: float, **kwargs) -> AckClient:
    """Upload ``data`` as one v2 request and wait for the end of its ack stream."""
    client = AckClient(hub.port, camera, epoch, **kwargs)
    try:
        client.send(data, rate=kwargs.pop("rate", None) if "rate" in kwargs else None)
        client.end()
        client.wait_end(40)
    finally:
        client.close()
    return client


def test_live_v2_acks_match_the_catalog_and_v1_still_works(hub_factory, clip):
    hub = hub_factory(segment_seconds=2).start()
    epoch = time.time() - 2
    client = AckClient(hub.port, "porch", epoch)
    pusher = ffmpeg_pusher(hub.url("stock"), seconds=5)  # a stock v1 pusher beside it
    with running(pusher):
        try:
            client.send(clip, chunk=32 * 1024, rate=len(clip) / 6)  # twice real time
            wait_for(lambda: len(client.durable()) >= 2, 20, "acks while the body streams")
            assert client.status == 200
            client.end()
            last = client.wait_end(30)
        finally:
            client.close()
        assert pusher.proc.wait(30) == 0, pusher.output
    assert last is not None and last.done, client.acks
    rows = segments(hub.db_path, "porch")
    assert last.segments == len(rows) >= 5
    assert last.size == len(clip)
    acks = client.durable()
    assert acks == sorted(acks), "durable_pts must never go back"
    expected = [expected_ack(hub, row, epoch) for row in rows]
    for value in acks:  # each ack is exactly the end of one cataloged segment
        assert min(abs(value - e) for e in expected) < 5e-6, (value, expected)
    assert abs(last.durable_pts - expected[-1]) < 5e-6
    wait_for(lambda: segments(hub.db_path, "stock"), 15, "the stock pusher's footage")
    assert hub.stop() == 0, hub.output[-3000:]
    assert not any(r.backfilled for r in segments(hub.db_path))
