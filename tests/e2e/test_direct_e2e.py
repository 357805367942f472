"""Ingest protocol v3 ("direct") end to end: a real hub whose ffmpeg reads the edge's socket.

A client written from docs/design/protocol.md ("Version 3") switches protocols and sends raw
MPEG-TS: every byte is recorded (the catalog tiles the clip, every file decodes), the acks are
the segments' ends as in version 2, a half-close ends the stream with `done`, and what a
version-3 head or stream gets wrong is refused. A stream of padding is dropped as stalled.
(Over TLS version 3 is refused: tests/e2e/test_ingest_tls.py.)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Iterator

import pytest

from tests.e2e.test_backfill_e2e import assert_acks_are_segment_ends, first_pts, outage_rows
from tests.support.control import CatalogControl
from tests.support.directclient import DirectClient
from tests.support.media import encoded_ts, ffmpeg_complaints, segments
from tests.support.procs import Hub, ffmpeg_pusher, running, wait_for

pytestmark = pytest.mark.e2e

FPS = 25
UTC = dt.timezone.utc
NULL_PACKET = b"\x47\x1f\xff\x10" + b"\xff" * 184


@pytest.fixture(scope="module")
def shared_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """One hub for the tests that record nothing; stopped (and checked) at the module's end."""
    hub = Hub(tmp_path_factory.mktemp("direct-hub"))
    try:
        yield hub.start()
        assert hub.stop() == 0, hub.output[-3000:]
    finally:
        for run in hub.runs:
            run.kill_group()


@pytest.fixture(scope="module")
def clip() -> bytes:
    """12 s of H.264 in MPEG-TS, 1 s GOPs."""
    return encoded_ts(12, rate=FPS)


def test_v3_records_every_byte_and_acks_the_segments(hub_factory, clip):
    hub = hub_factory(segment_seconds=2).start()
    epoch = time.time() - first_pts(clip)
    client = DirectClient(hub.port, "porch", epoch, extra={"X-NVR-Spool": "1"})
    pusher = ffmpeg_pusher(hub.url("stock"), seconds=5)  # a stock v1 pusher beside it
    with running(pusher):
        try:
            assert client.status == 101, client.answer
            client.send(clip, rate=len(clip) / 6)  # twice real time
            wait_for(lambda: len(client.durable()) >= 2, 20, "acks while the stream flows")
            client.end()
            last = client.wait_end(30)
        finally:
            client.close()
        assert pusher.proc.wait(30) == 0, pusher.output
    assert last.done, client.raw
    rows = segments(hub.db_path, "porch")
    assert last.segments == len(rows) >= 5
    assert last.size == len(clip), "the hub counts every byte ffmpeg read from the socket"
    for row in rows:  # every file decodes with no decoder message at all
        assert ffmpeg_complaints(hub.storage / row.path) == "", row.path
    for earlier, later in zip(rows, rows[1:]):  # the segments tile: nothing is missing
        assert abs((later.start - earlier.end).total_seconds()) < 1 / FPS
    assert abs(sum(r.duration for r in rows) - 12) < 2 / FPS
    assert_acks_are_segment_ends(hub, rows, epoch, client.durable(), last.durable_pts)
    wait_for(lambda: segments(hub.db_path, "stock"), 15, "the stock pusher's footage")
    assert "porch: edge" in hub.output and "ended its stream" in hub.output
    assert [row[2] for row in outage_rows(hub.db_path, "porch")] == ["clean_shutdown"]
    assert hub.stop() == 0, hub.output[-3000:]


@pytest.mark.parametrize("case, expected", [
    ("no upgrade", "needs Connection: Upgrade"),
    ("no epoch", "needs X-NVR-Stream-Epoch"),
    ("backfill", "for the live stream"),
    ("early body", "after the hub's 101"),
])
def test_v3_heads_that_cannot_switch_get_400(shared_hub, clip, case, expected):
    hub = shared_hub
    kwargs: dict = {"epoch": time.time()}
    if case == "no upgrade":
        kwargs["upgrade"] = False
    elif case == "no epoch":
        kwargs["epoch"] = None
    elif case == "backfill":
        kwargs["extra"] = {"X-NVR-Mode": "backfill", "X-NVR-Backfill-Id": "b1"}
    else:  # the stream sent with the head, before the 101
        kwargs["early_body"] = clip[:188 * 20]
    client = DirectClient(hub.port, "porch", **kwargs)
    try:
        assert client.status == 400, client.answer
        assert expected in client.refusal, (client.answer, client.refusal)
    finally:
        client.close()
    assert not segments(hub.db_path, "porch")


def test_v3_stream_that_is_not_mpegts_is_refused_after_the_switch(shared_hub):
    hub = shared_hub
    client = DirectClient(hub.port, "gif", time.time())
    try:
        assert client.status == 101
        client.send(b"GIF89a" + b"\0" * 2000)
        last = client.wait_end(20)
    finally:
        client.close()
    assert last.closed is not None and last.closed.startswith("415"), client.raw
    assert "gif: edge" not in hub.output, "no camera was made for it"
    assert not segments(hub.db_path, "gif")


def test_v3_padding_only_is_dropped_as_stalled(hub_factory, clip):
    hub = hub_factory(config="stall_timeout = 3\n").start()
    client = DirectClient(hub.port, "porch", time.time() - first_pts(clip))
    try:
        assert client.status == 101
        client.send(clip[:len(clip) // 4])  # 3 s of video: recorded
        deadline = time.monotonic() + 30
        while not client.ended.is_set() and time.monotonic() < deadline:
            try:  # then nothing but null packets, as a name holder would send
                client.sock.sendall(NULL_PACKET * 100)
            except OSError:
                break
            time.sleep(0.1)
        last = client.wait_end(30)
    finally:
        client.close()
    assert last.closed == "stalled", client.raw
    assert "stalled" in hub.output
    wait_for(lambda: segments(hub.db_path, "porch"), 15, "the video before the padding")
    assert hub.stop() == 0



@contextlib.contextmanager
def live_direct(hub, clip: bytes, epoch: float | None = None,
                acked: bool = True) -> Iterator[DirectClient]:
    """A v3 stream sending ``clip`` at real time on a thread (acknowledged once, if ``acked``);
    the sender stops and the socket closes when the block ends."""
    client = DirectClient(hub.port, "porch", epoch or time.time() - first_pts(clip))
    stop = threading.Event()

    def send() -> None:
        with contextlib.suppress(OSError):
            for offset in range(0, len(clip), 8192):
                if stop.is_set() or client.ended.is_set():
                    return
                client.sock.sendall(clip[offset:offset + 8192])
                time.sleep(8192 / (len(clip) / 12))

    sender = threading.Thread(target=send, daemon=True)
    try:
        assert client.status == 101, client.answer
        sender.start()
        if acked:
            wait_for(lambda: client.durable(), 20, "a first ack")
        yield client
    finally:
        stop.set()
        if sender.is_alive():
            sender.join(10)
        client.close()


def test_v3_admin_restart_ends_the_request_and_keeps_what_was_acked(hub_factory, clip):
    hub = hub_factory(segment_seconds=2).start()
    with live_direct(hub, clip) as client:
        with CatalogControl(hub) as control:
            assert control.command("porch", "restart").startswith("ok"), hub.output[-2000:]
        last = client.wait_end(20)
    assert last.closed == "recorder restarted (on request)", client.raw
    rows = segments(hub.db_path, "porch")
    assert rows
    for row in rows:  # one SIGTERM: ffmpeg stopped between two frames
        assert ffmpeg_complaints(hub.storage / row.path) == "", row
    assert hub.stop() == 0, hub.output[-3000:]


def test_v3_hub_shutdown_closes_the_segment_and_tells_the_edge(hub_factory, clip):
    hub = hub_factory(segment_seconds=2).start()
    with live_direct(hub, clip) as client:
        started = time.monotonic()
        assert hub.stop() == 0, hub.output[-3000:]
        assert time.monotonic() - started < 8, "ffmpeg woke from its read at once"
        last = client.wait_end(10)
    assert last.closed == "closed_by_hub", client.raw
    rows = segments(hub.db_path, "porch")
    assert rows and not any(r.recovered for r in rows), "the open segment was closed normally"
    assert all(ffmpeg_complaints(hub.storage / r.path) == "" for r in rows)


def test_v3_hub_killed_leaves_no_ffmpeg_and_keeps_what_was_acked(hub_factory, clip):
    # A direct ffmpeg reads the edge's socket, not the hub: it must die with the hub (SIGKILL,
    # setpriv). Its open segment may be lost or torn: the edge's spool still holds everything
    # after the last ack (the protocol's promise); what was acked must be in the catalog.
    hub = hub_factory(segment_seconds=2).start()
    epoch = time.time() - first_pts(clip)
    with live_direct(hub, clip, epoch) as client:
        wait_for(lambda: len(client.durable()) >= 2, 20, "two acks")
        assert hub.ffmpeg_children()
        hub.process.kill()
        wait_for(lambda: not hub.ffmpeg_children(), 10, "ffmpeg to die with the hub")
    acked = max(client.durable())
    hub.start()
    rows = segments(hub.db_path, "porch")
    covered = max((r.end - dt.datetime.fromtimestamp(epoch, UTC)).total_seconds() for r in rows)
    assert covered >= acked - 1 / FPS, (covered, acked)
    for row in rows:  # a torn open segment was cut back, an empty one set aside
        assert ffmpeg_complaints(hub.storage / row.path) == "", row
    assert hub.stop() == 0, hub.output[-3000:]


def test_v3_camera_watched_live_gets_a_picture_and_the_edge_a_hint(hub_factory, clip):
    # the hub reads none of a direct stream's bytes: its live tap peeks just ahead of ffmpeg
    # (SO_PEEK_OFF), and tells the edge to send each frame at once while someone watches
    hub = hub_factory(segment_seconds=2).start()
    live_dir = hub.storage / ".live" / "porch"
    with live_direct(hub, clip, acked=False) as client:
        live_dir.mkdir(parents=True, exist_ok=True)
        (live_dir / ".wanted").touch()
        wait_for(lambda: any(a.live for a in client.lines), 15, "the hint to send at once")
        wait_for(lambda: len(list(live_dir.glob("mse-*.m4s"))) >= 2, 15, "two groups of frames")
        assert (live_dir / "mse.head").exists()
        (live_dir / ".wanted").unlink()
        wait_for(lambda: any(a.live is False for a in client.lines), 15, "the hint to batch again")
        wait_for(lambda: not list(live_dir.glob("mse-*")), 10, "the tap to stop and clean up")
        wait_for(lambda: len(client.durable()) >= 2, 20, "acks throughout")
    assert hub.stop() == 0, hub.output[-3000:]
    rows = segments(hub.db_path, "porch")
    assert rows and all(ffmpeg_complaints(hub.storage / r.path) == "" for r in rows)
