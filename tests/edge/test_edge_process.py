"""``python -m edge`` as a user runs it: ends cleanly at a file's end and on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge.__main__ import run
from edge.cli import parse_args
from tests.edge.fakehub import TOKEN, VIDEO_FRAMES, IngestServer, decode_ts, wait_until
from tests.edge.test_uplink import free_port

ROOT = Path(__file__).resolve().parents[2]


class Edge:
    """A running ``python -m edge`` whose log goes to a file the test can read at any time."""

    def __init__(self, proc: subprocess.Popen, log: Path) -> None:
        self.proc = proc
        self.log = log

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)


@pytest.fixture
def edge_process(tmp_path: Path) -> Iterator[Callable[..., Edge]]:
    """Start ``python -m edge`` processes; any still running at the end is killed."""
    started: list[tuple[Edge, object]] = []
    token_file = tmp_path / "token"
    token_file.write_text(f"{TOKEN}\n")

    def start(port: int, *args: str) -> Edge:
        # the fake hub speaks versions 1 and 2 (version 3: tests/e2e/test_edge_direct.py)
        argv = [sys.executable, "-m", "edge", "--hub", "127.0.0.1", "--port", str(port),
                "--location", "driveway", "--token-file", str(token_file),
                "--size", "320x240", "--bitrate", "300k", "--protocol", "2", *args]
        log = tmp_path / f"edge-{len(started)}.log"
        log_file = log.open("w")
        # The default spool lives under the user's state directory: keep it in the test's.
        env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
        proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL, env=env,
                                stdout=subprocess.DEVNULL, stderr=log_file)
        edge = Edge(proc, log)
        started.append((edge, log_file))
        return edge

    yield start
    for edge, log_file in started:
        if edge.proc.poll() is None:
            edge.proc.kill()
        edge.proc.wait(10)
        log_file.close()


def test_file_with_no_loop_ends_cleanly_after_a_complete_upload(
    ingest_server: Callable[..., IngestServer],
    edge_process: Callable[..., Edge],
    video_file: Path,
) -> None:
    server = ingest_server()
    edge = edge_process(server.port, "--camera", str(video_file), "--no-loop", "--no-motion")
    assert edge.wait(timeout=20) == 0, edge.stderr()
    [request] = server.requests
    assert request.target == "/ingest/v1/driveway-front-door"
    assert request.complete and request.status == 200
    fmt, codec, pts, keys = decode_ts(request.body_path)
    assert (fmt, codec) == ("mpegts", "h264") and keys[0] == pts[0] < 90  # PTS 0: the epoch ms
    # a file plays at its own pace, as a camera would: a capture late on a loaded machine
    # drops a frame (never blocks), so a few may be missing, never more than the file holds
    assert VIDEO_FRAMES * 2 // 3 <= len(pts) <= VIDEO_FRAMES


def test_sigterm_finishes_every_stream_and_exits_zero(
    ingest_server: Callable[..., IngestServer],
    edge_process: Callable[..., Edge],
    tmp_path: Path,
) -> None:
    server = ingest_server()
    secret_url = "rtsp://admin:hunter2@127.0.0.1:9/live"  # nothing listens: retried quietly
    edge = edge_process(
        server.port, "--camera", "test", "--name", "a", "--camera", "test",
        "--camera", str(tmp_path / "missing.mp4"), "--camera", secret_url, "--log-level", "debug",
    )
    # One camera failing (the missing file, the dead URL) does not stop the others.
    wait_until(lambda: len(server.requests) == 2 and server.total_bytes() > 30_000, 15,
               "both test streams")
    edge.proc.send_signal(signal.SIGTERM)
    # (10 s: the stop fsyncs each spool's last file, slow on a disk other tests keep busy)
    assert edge.wait(timeout=10) == 0, edge.stderr()
    stderr = edge.stderr()
    assert sorted(r.target for r in server.requests) == ["/ingest/v1/a", "/ingest/v1/driveway-test"]
    assert all(r.complete and r.status == 200 for r in server.requests)
    assert "cannot open file" in stderr
    assert "hunter2" not in stderr and "rtsp://***@127.0.0.1:9/live" in stderr
    # the password was on the command line, where ps shows it: the edge says so, once
    assert stderr.count("has credentials on the command line") == 1, stderr


def test_sigint_stops_a_stream_waiting_for_an_unreachable_hub(
    edge_process: Callable[..., Edge]
) -> None:
    edge = edge_process(1, "--camera", "test")  # port 1: connection refused
    wait_until(lambda: "hub unreachable, retrying" in edge.stderr(), 10, "the outage log")
    edge.proc.send_signal(signal.SIGINT)
    assert edge.wait(timeout=10) == 0, edge.stderr()


def test_exit_code_is_one_when_no_camera_can_run(tmp_path: Path) -> None:
    config = parse_args(["--hub", "127.0.0.1", "--port", "1", "--location", "x",
                         "--camera", str(tmp_path / "missing.mp4"), "--no-loop",
                         "--spool-dir", str(tmp_path / "spool")])
    assert run(config, threading.Event()) == 1


def spooled_seconds(folder: Path) -> float:
    """Footage in closed spool files, from their names (<epoch>-<start>-<last>-<end>.ts)."""
    ends = [p.stem.split("-") for p in folder.glob("*.ts")]
    return sum(int(end) - int(start) for _, start, _, end in ends) / 90_000


def test_what_an_edge_spooled_before_a_restart_is_back_filled_after_it(
    ingest_server: Callable[..., IngestServer],
    edge_process: Callable[..., Edge],
    tmp_path: Path,
) -> None:
    port = free_port()
    first = edge_process(port, "--camera", "test", "--name", "gate", "--fps", "15")
    wait_until(lambda: "hub unreachable, retrying" in first.stderr(), 10, "the outage")
    folder = tmp_path / "state" / "nvr-edge" / "spool" / "gate"
    # The camera runs on while the hub is down: its footage goes to the spool.
    wait_until(lambda: spooled_seconds(folder) >= 3.0, 20, "3 s in closed spool files")
    first.proc.send_signal(signal.SIGTERM)
    assert first.wait(timeout=10) == 0, first.stderr()

    server = ingest_server(port=port, v2=True)
    second = edge_process(port, "--camera", "test", "--name", "gate", "--fps", "15")
    wait_until(lambda: any(r.mode == "backfill" and r.ended == "done" for r in server.requests),
               20, "the first run's footage back-filled")
    live = [r for r in server.requests if r.mode == "live"]
    backfill = next(r for r in server.requests if r.mode == "backfill")
    # The first run's timeline: an epoch older than the second run's live request.
    assert float(backfill.headers["x-nvr-stream-epoch"]) < float(
        live[0].headers["x-nvr-stream-epoch"])
    _, _, pts, keys = decode_ts(backfill.body_path)
    # the 3 s spooled, by their timestamps: a loaded machine may drop a capture frame or two
    assert pts[0] == keys[0] and (pts[-1] - pts[0]) / 90_000 >= 3.0 - 3 / 15, pts
    assert "spool holds" in second.stderr()
