"""Ingest protocol v2 end to end: a real hub, real ffmpeg, a v2 client written from the spec.

Live requests get acks whose durable_pts match what the catalog holds; a backfill upload
lands in its true time slot marked backfilled, is acknowledged, and is not cataloged twice.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import signal
import sqlite3
import threading
import time

import av
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


def first_pts(data: bytes) -> float:
    """The first video PTS (seconds) of an MPEG-TS clip."""
    with av.open(io.BytesIO(data), format="mpegts") as container:
        stream = container.streams.video[0]
        return min(p.pts for p in container.demux(stream) if p.pts is not None) * float(
            stream.time_base)


def mid_gop_offset(data: bytes) -> int:
    """A packet boundary half-way (in bytes) between the clip's second and third keyframes.

    Not a fixed fraction of the clip: x264's threads make each encode's frame sizes differ a
    little, and a third of the bytes once fell in a GOP's last frame, just before a keyframe.
    """
    with av.open(io.BytesIO(data), format="mpegts") as container:
        keys = [p.pos for p in container.demux(container.streams.video[0])
                if p.is_keyframe and p.pos is not None and p.pos >= 0]
    assert len(keys) >= 3, keys
    return (keys[1] + keys[2]) // 2 // 188 * 188


def expected_ack(hub, row, epoch: float) -> float:
    """The durable_pts a segment earns: its last frame's PTS (request timeline) plus a tick."""
    decoded = decode_fully(hub.storage / row.path)
    start = (row.start - dt.datetime.fromtimestamp(epoch, UTC)).total_seconds()
    last_frame = start + decoded.duration - 1 / FPS
    return last_frame + TICK


def assert_acks_are_segment_ends(hub, rows, epoch: float, acks: list[float],
                                 last: float | None) -> None:
    """Acks never go back, each is exactly the end of a cataloged segment, the last the last's."""
    assert acks == sorted(acks), "durable_pts must never go back"
    expected = [expected_ack(hub, row, epoch) for row in rows]
    for value in acks:
        assert min(abs(value - e) for e in expected) < 5e-6, (value, expected)
    assert last is not None and abs(last - expected[-1]) < 5e-6


def push_v2(hub, camera: str, data: bytes, epoch: float, rate: float | None = None,
            **kwargs) -> AckClient:
    """Upload ``data`` as one v2 request and wait for the end of its ack stream."""
    client = AckClient(hub.port, camera, epoch, **kwargs)
    try:
        client.send(data, rate=rate)
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
    assert_acks_are_segment_ends(hub, rows, epoch, client.durable(), last.durable_pts)
    wait_for(lambda: segments(hub.db_path, "stock"), 15, "the stock pusher's footage")
    assert hub.stop() == 0, hub.output[-3000:]
    assert not any(r.backfilled for r in segments(hub.db_path))


def outage_rows(db_path, camera: str) -> list[tuple]:
    """(started_at, ended_at, reason, backfilled_seconds, dropped_seconds) of a camera."""
    with sqlite3.connect(db_path, timeout=10) as conn:
        return conn.execute(
            "SELECT o.started_at, o.ended_at, o.reason, o.backfilled_seconds, o.dropped_seconds"
            " FROM outages o JOIN cameras c ON c.id = o.camera_id WHERE c.name = ?"
            " ORDER BY o.started_at", (camera,)).fetchall()


def online_alerts(db_path, camera: str) -> list[dict]:
    """Details of the camera's `online` alerts."""
    with sqlite3.connect(db_path, timeout=10) as conn:
        rows = conn.execute("SELECT details, body FROM alerts WHERE kind = 'online' AND camera = ?",
                            (camera,)).fetchall()
    return [dict(json.loads(details), body=body) for details, body in rows]


def wall(epoch: float, pts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch + pts, UTC)


def test_backfill_fills_the_gap_in_its_true_slot_once(hub_factory, clip):
    hub = hub_factory(segment_seconds=2).start()
    four, six = encoded_ts(4, rate=FPS), encoded_ts(6, rate=FPS)
    lead = first_pts(six)  # ffmpeg's mpegts muxer starts PTS at 1.4 s plus the B-frame delay
    # before the outage: 4 s live, at real time, from an edge with a spool
    gone = push_v2(hub, "yard", four, time.time() - lead, rate=len(four) / 4,
                   extra={"X-NVR-Spool": "1"})
    assert gone.acks[-1].done
    cut = time.time()
    time.sleep(5)  # the outage: the edge spools instead of sending
    live = AckClient(hub.port, "yard", time.time() - lead,
                     extra={"X-NVR-Spool": "1", "X-NVR-Spool-Dropped": "1.5"})
    try:
        # the edge reconnects (live first), then uploads the gap from its spool
        live.send(clip[:len(clip) // 8])  # 1.5 s: within ffmpeg's input analysis, no segment yet
        backfill_epoch = cut - lead  # the clip's first frame is the instant of the cut
        first = push_v2(hub, "yard", six, backfill_epoch, mode="backfill", backfill_id="gap-1")
        assert first.status == 200 and first.acks[-1].done, first.acks
        filled = [r for r in segments(hub.db_path, "yard") if r.backfilled]
        assert first.acks[-1].segments == len(filled) >= 3
        assert abs((filled[0].start - dt.datetime.fromtimestamp(cut, UTC)).total_seconds()) < 0.01
        assert abs(sum(r.duration for r in filled) - 6) < 0.1
        assert first.acks[-1].durable_pts == pytest.approx(lead + 6 - 1 / FPS + TICK, abs=1e-6)

        again = push_v2(hub, "yard", six, backfill_epoch, mode="backfill", backfill_id="gap-1")
        assert again.acks[-1].done and again.acks[-1].segments == len(filled)
        assert [r for r in segments(hub.db_path, "yard") if r.backfilled] == filled

        shifted = push_v2(hub, "yard", six, backfill_epoch + 3, mode="backfill", backfill_id="g2")
        assert shifted.acks[-1].done
        kept = [r for r in segments(hub.db_path, "yard") if r.backfilled and r not in filled]
        starts = [round((r.start - filled[0].start).total_seconds(), 1) for r in kept]
        assert 3.0 not in starts, "a wholly covered segment was cataloged twice"
        assert 5.0 in starts, "a partly covered segment must be kept"
    finally:
        live.close()
    wait_for(lambda: online_alerts(hub.db_path, "yard"), 15, "the online alert")
    alert = online_alerts(hub.db_path, "yard")[0]
    assert alert["gap"] == "backfill" and alert["dropped_seconds"] == 1.5
    assert "back-filled" in alert["body"] or "backfill" in alert["body"], alert["body"]
    (outage,) = [o for o in outage_rows(hub.db_path, "yard") if o[1] is not None]
    length = (dt.datetime.fromisoformat(outage[1]) - dt.datetime.fromisoformat(outage[0]))
    assert outage[4] == 1.5
    assert length.total_seconds() - 0.5 <= outage[3] <= length.total_seconds() + 1e-6, outage
    assert hub.stop() == 0, hub.output[-3000:]


def status_of(client: AckClient) -> int | None:
    client.wait_end(15)
    return client.status


def test_backfill_requests_are_checked_before_anything_is_recorded(hub_factory, clip):
    hub = hub_factory(segment_seconds=2).start()
    epoch = time.time() - 3600
    unknown = AckClient(hub.port, "nobody", epoch, mode="backfill", backfill_id="b1")
    unknown.send(clip[:188 * 20])
    assert status_of(unknown) == 404
    unknown.close()
    no_id = AckClient(hub.port, "nobody", epoch, mode="backfill")
    assert status_of(no_id) == 400 and b"Backfill-Id" in no_id.body
    no_id.close()
    push_v2(hub, "yard", clip[:len(clip) // 6], time.time() - 1.4)  # the camera now exists
    slow = AckClient(hub.port, "yard", epoch, mode="backfill", backfill_id="b1")
    try:
        slow.send(clip[:188 * 50])
        wait_for(lambda: slow.status == 200, 10, "the first backfill admitted")
        second = AckClient(hub.port, "yard", epoch, mode="backfill", backfill_id="b2")
        second.send(clip[:188 * 20])
        assert status_of(second) == 409 and b"already has a backfill" in second.body
        second.close()
        live = push_v2(hub, "yard", clip[:len(clip) // 6], time.time() - 1.4)
        assert live.status == 200 and live.acks[-1].done, "a backfill must not take the live slot"
    finally:
        slow.close()
    assert hub.stop() == 0, hub.output[-3000:]
    assert not any(r.backfilled for r in segments(hub.db_path, "nobody"))


def covered_until(hub, camera: str, epoch: float) -> float:
    """Request-timeline seconds up to which the camera's cataloged files tile from the start."""
    rows = segments(hub.db_path, camera)
    origin = dt.datetime.fromtimestamp(epoch, UTC)
    end = None
    for row in rows:
        assert (hub.storage / row.path).stat().st_size > 0, row.path
        if end is not None and (row.start - end).total_seconds() > 0.05:
            break
        end = row.end
    return (end - origin).total_seconds() if end else 0.0


def test_a_hub_killed_mid_stream_had_cataloged_everything_it_acked(hub_factory, clip):
    hub = hub_factory(segment_seconds=2).start()
    epoch = time.time() - first_pts(clip)
    client = AckClient(hub.port, "porch", epoch)
    try:
        sender = threading.Thread(target=client.send, args=(clip,),
                                  kwargs={"chunk": 16 * 1024, "rate": len(clip) / 12})
        sender.start()
        wait_for(lambda: len(client.durable()) >= 3, 20, "three acks")
        hub.process.kill()  # SIGKILL: no clean finish, no last ack
        client.wait_end(10)
        sender.join(15)
    finally:
        client.close()
    acked = client.durable()[-1]
    assert not any(a.done for a in client.acks)
    # every frame the hub acknowledged is in a cataloged file already, before any recovery
    assert covered_until(hub, "porch", epoch) >= acked - TICK - 1e-6, (acked, client.acks)


def test_acks_stop_at_an_ffmpeg_death_and_the_request_ends_closed_at_once(hub_factory, clip):
    hub = hub_factory(segment_seconds=2).start()
    epoch = time.time() - first_pts(clip)
    client = AckClient(hub.port, "porch", epoch)
    try:
        # 8 s of footage: past ffmpeg's 5-s input analysis, so segments are being listed
        client.send(clip[:len(clip) * 2 // 3], chunk=16 * 1024, rate=len(clip) / 6)
        wait_for(lambda: client.durable(), 20, "a first ack")
        (pid,) = hub.ffmpeg_children()
        os.kill(pid, signal.SIGKILL)  # bytes in its pipe are lost: acks must not pass them
        hub.process.wait_line(r"ffmpeg exited \(-9\).*the request ended", 10)
        frozen = client.durable()[-1]
        # the hub ends the request at once (the edge reopens one), without waiting for the body
        last = client.wait_end(15)
    finally:
        client.close()
    assert last is not None and last.closed == "recorder restarted (exit -9)", client.acks
    assert client.durable()[-1] == frozen
    hub.process.wait_line(r"porch: ending the request of edge .*recorder restarted", 5)
    assert hub.stop() == 0, hub.output[-3000:]


def test_a_request_that_starts_mid_gop_records_but_earns_no_ack(hub_factory, clip):
    """Frames before the first keyframe a demuxer can start at are never recorded, so the acks
    (every frame below durable_pts) cannot cover them, nor anything after: the request records
    on without acks and ends "closed", and the edge keeps its spool for the backfill."""
    hub = hub_factory(segment_seconds=2).start()
    cut = mid_gop_offset(clip)  # mid-GOP: video PES with no PAT/PMT before them
    tail = clip[cut:]
    epoch = time.time() - first_pts(tail)
    client = push_v2(hub, "porch", tail, epoch)
    try:  # the request has ended: the hub said it long ago, unless it judged otherwise
        hub.process.wait_line(r"porch: [\d.]+ s of video before the first keyframe with a PAT",
                              20)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nacks: {client.acks}\nhub:\n{hub.output[-4000:]}") from None
    assert client.durable() == [], client.acks
    last = client.acks[-1]
    assert last.closed and "cannot be recorded" in last.closed, client.acks
    assert len(segments(hub.db_path, "porch")) >= 3  # it recorded what it could
    assert hub.stop() == 0
