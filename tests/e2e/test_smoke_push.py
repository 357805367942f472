"""A stock ffmpeg CLI pushes into the hub and its footage is cataloged and playable."""

from __future__ import annotations

from tests.support.media import decode_fully, segments
from tests.support.procs import ffmpeg_pusher, running, wait_for


def test_stock_ffmpeg_push_is_segmented_and_cataloged(hub_factory):
    hub = hub_factory().start()
    pusher = ffmpeg_pusher(hub.url("porch"), seconds=7)
    with running(pusher):
        assert pusher.proc.wait(30) == 0, pusher.output
    wait_for(lambda: len(segments(hub.db_path, "porch")) >= 3, 15, "segments")
    assert hub.stop() == 0
    rows = segments(hub.db_path, "porch")
    total = sum(r.duration for r in rows)
    assert 6.5 <= total <= 7.5, [r.duration for r in rows]
    for row in rows:
        decoded = decode_fully(hub.storage / row.path)
        assert decoded.errors == 0
        assert abs(decoded.duration - row.duration) < 0.1, (row, decoded)
    assert not list((hub.storage / "porch" / ".incoming").iterdir())


def test_live_hls_rolls_while_streaming_and_vanishes_after(hub_factory):
    import time

    hub = hub_factory().start()
    live = hub.storage / ".live" / "porch" / "live.m3u8"
    pusher = ffmpeg_pusher(hub.url("porch"))
    with running(pusher):
        wait_for(lambda: live.exists() and live.read_text().count("#EXTINF") >= 3, 20,
                 "a live playlist with three pieces")
        pieces = [line for line in live.read_text().splitlines() if line.endswith(".ts")]
        assert len(pieces) <= 6
        newest = live.parent / pieces[-1]
        assert decode_fully(newest).errors == 0
        assert decode_fully(newest).duration <= 2.1
        # the playlist keeps moving: the newest piece is at most a couple of seconds old
        assert time.time() - newest.stat().st_mtime < 3
        pusher.terminate()
        wait_for(lambda: not live.exists(), 15, "the live playlist to go when the edge leaves")
    assert hub.stop() == 0
