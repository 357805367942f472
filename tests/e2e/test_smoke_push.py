"""A stock ffmpeg CLI pushes into the hub and its footage is cataloged and playable."""

from __future__ import annotations

import pytest

from tests.support.media import decode_fully, segments
from tests.support.procs import ffmpeg_pusher, running, wait_for


@pytest.mark.both_ffmpegs
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


@pytest.mark.both_ffmpegs
def test_live_hls_runs_only_while_watched(hub_factory):
    import os
    import time

    hub = hub_factory().start()
    live_dir = hub.storage / ".live" / "porch"
    playlist, mark = live_dir / "live.m3u8", live_dir / ".wanted"
    pusher = ffmpeg_pusher(hub.url("porch"))
    with running(pusher):
        wait_for(lambda: segments(hub.db_path, "porch"), 20, "recording")
        assert not playlist.exists(), "nobody watches: no live view is made"
        live_dir.mkdir(parents=True, exist_ok=True)
        mark.touch()  # what the web app does when a browser fetches the live playlist
        wait_for(lambda: playlist.exists() and playlist.read_text().count("#EXTINF") >= 3, 20,
                 "a live playlist with three pieces")
        pieces = [line for line in playlist.read_text().splitlines() if line.endswith(".ts")]
        newest = live_dir / pieces[-1]
        assert decode_fully(newest).errors == 0 and decode_fully(newest).duration <= 2.1
        assert time.time() - newest.stat().st_mtime < 3, "the live view lags"
        os.utime(mark, (time.time() - 60, time.time() - 60))  # the browser went away
        wait_for(lambda: not playlist.exists(), 10, "the live view to stop")
        hub.process.wait_line(r"porch: live view stopped")
    assert hub.stop() == 0
