"""Our edge on protocol version 3 against a real hub: its socket is the hub's ffmpeg's input, its
footage is recorded and acknowledged, a live view of it gets a picture, and a stop ends it cleanly.

(The protocol alone, from a client written from the spec: tests/e2e/test_direct_e2e.py; the
edge's client against a scripted hub: tests/edge/test_direct_uplink.py; over TLS the edge sends
version 2: tests/e2e/test_ingest_tls.py.)
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.e2e.test_backfill_e2e import outage_rows
from tests.support.media import ffmpeg_complaints, segments
from tests.support.procs import LoggedProcess, wait_for

pytestmark = pytest.mark.e2e


def start_edge(hub, spool: Path, *extra: str) -> LoggedProcess:
    """One edge process (the default protocol) with one synthetic camera."""
    return LoggedProcess([sys.executable, "-m", "edge", "--hub", "127.0.0.1", "--port",
                          str(hub.port), "--location", "yard", "--fps", "15", "--size",
                          "320x240", "--bitrate", "400k", "--camera", "test", "--name", "gate",
                          "--spool-dir", str(spool), "--no-motion", *extra])


def open_file_sizes(incoming: Path) -> list[int]:
    """The sizes of the segment files in ffmpeg's incoming folder now."""
    sizes = []
    for path in incoming.glob("*.ts"):
        with contextlib.suppress(FileNotFoundError):  # finished and moved meanwhile
            sizes.append(path.stat().st_size)
    return sizes


def stdin_of(pid: int) -> str:
    """What a process's standard input is ("socket:[...]", "pipe:[...]")."""
    return os.readlink(f"/proc/{pid}/fd/0")


def test_the_edge_sends_version_3_the_hub_records_and_shows_it_live(hub_factory, tmp_path):
    hub = hub_factory(segment_seconds=2).start()
    edge = start_edge(hub, tmp_path / "spool")
    try:
        edge.wait_line(r"speaks protocol v3", 30)
        [ffmpeg] = hub.ffmpeg_children()
        assert stdin_of(ffmpeg).startswith("socket:"), "ffmpeg reads the edge's socket itself"
        wait_for(lambda: len(segments(hub.db_path, "gate")) >= 2, 30, "two segments")

        live_dir = hub.storage / ".live" / "gate"
        live_dir.mkdir(parents=True, exist_ok=True)
        (live_dir / ".wanted").touch()
        wait_for(lambda: len(list(live_dir.glob("mse-*.m4s"))) >= 2, 20, "live frames")
        # what the live view reads grows a frame at a time (flush_packets=1), not in 256-KiB
        # writes (several seconds of this camera)
        sizes: set[int] = set()
        wait_for(lambda: sizes.update(open_file_sizes(hub.storage / "gate" / ".incoming"))
                 or len(sizes) >= 10, 10, "the open segment file to grow frame by frame",
                 interval=0.02)
        (live_dir / ".wanted").unlink()
        wait_for(lambda: not list(live_dir.glob("mse-*")), 15, "the live view to stop")

        edge.proc.send_signal(signal.SIGTERM)
        assert edge.proc.wait(20) == 0, edge.output[-3000:]
        hub.process.wait_line(r"gate: edge .* ended its stream", 15)
    finally:
        edge.kill_group()
    assert "Traceback" not in edge.output, edge.output[-3000:]
    rows = segments(hub.db_path, "gate")
    assert all(ffmpeg_complaints(hub.storage / row.path) == "" for row in rows)
    spooled = [p for p in (tmp_path / "spool").rglob("*") if p.is_file() and p.stat().st_size]
    assert not [p for p in spooled if p.suffix == ".ts"], "everything was acknowledged"
    # it read the hub's "done": a clean stop, which TCP alone could not tell from a kill
    wait_for(lambda: outage_rows(hub.db_path, "gate"), 10, "the outage")
    assert [row[2] for row in outage_rows(hub.db_path, "gate")] == ["clean_shutdown"]
    assert hub.stop() == 0, hub.output[-3000:]


def test_a_killed_edge_is_a_lost_connection_not_a_clean_stop(hub_factory, tmp_path):
    # its kernel sends a FIN, as a stopping edge's does; but it does not read the hub's "done"
    hub = hub_factory(segment_seconds=2).start()
    edge = start_edge(hub, tmp_path / "spool")
    try:
        wait_for(lambda: segments(hub.db_path, "gate"), 30, "a first segment")
        edge.proc.kill()
        edge.proc.wait(10)
        wait_for(lambda: outage_rows(hub.db_path, "gate"), 15, "the outage")
    finally:
        edge.kill_group()
    assert [row[2] for row in outage_rows(hub.db_path, "gate")] == ["connection_lost"]
    assert hub.stop() == 0, hub.output[-3000:]


def test_asked_for_version_2_the_edge_sends_it(hub_factory, tmp_path):
    hub = hub_factory(segment_seconds=2).start()
    edge = start_edge(hub, tmp_path / "spool", "--protocol", "2")
    try:
        edge.wait_line(r"speaks protocol v2", 30)
        [ffmpeg] = hub.ffmpeg_children()
        assert stdin_of(ffmpeg).startswith("pipe:"), "the hub relays version 2"
    finally:
        edge.kill_group()
    assert hub.stop() == 0, hub.output[-3000:]
