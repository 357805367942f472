"""The edge's CPU with its spool on and off: same camera settings, same real hub.

Starts a real hub (`python -m recorder`, temp storage and SQLite catalog) and then, one after
the other, `python -m edge --camera test` with the spool (the default) and with `--no-spool`.
Each edge's CPU (utime + stime from /proc/<pid>/stat) is sampled once its live stream is
accepted and again --seconds later; the figure is CPU seconds per wall second (1.0 = one core).
With --rounds N the two alternate N times and the medians count, which damps noise from other
processes. The target is at most 5 % more with the spool on.

Run: .venv/bin/python scripts/bench/edge_spool.py [--seconds 60] [--fps 15] [--size 1280x720]
     [--protocol 3|2]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """Return a process's user + system CPU seconds so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14 and 15)


class Process:
    """A child whose output is read in a thread, so a full pipe never stalls it."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        self.proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for raw in self.proc.stdout:
            self.lines.append(raw.decode("utf-8", "replace").rstrip())

    def wait_line(self, pattern: str, timeout: float) -> None:
        """Wait until a line matches ``pattern``; raise if the process dies or time runs out."""
        regex, deadline = re.compile(pattern), time.monotonic() + timeout
        while not any(regex.search(line) for line in list(self.lines)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"no {pattern!r}:\n" + "\n".join(self.lines[-30:]))
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM, a bounded wait, then SIGKILL of the process group."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def measure(port: int, work: Path, spool: bool, args: argparse.Namespace) -> float:
    """Run one edge; return its CPU seconds per wall second over ``args.seconds``."""
    argv = [sys.executable, "-m", "edge", "--hub", "127.0.0.1", "--port", str(port),
            "--location", "bench", "--camera", "test", "--name", "bench", "--fps", str(args.fps),
            "--size", args.size, "--bitrate", args.bitrate, "--protocol", args.protocol]
    argv += ["--spool-dir", str(work / "spool")] if spool else ["--no-spool"]
    argv.append("--no-motion")  # the spool's own cost, as before motion (edge_motion.py: its cost)
    edge = Process(argv, ROOT)
    try:
        edge.wait_line(r"accepted the stream|speaks protocol v[23]", 30)
        time.sleep(2.0)  # past the start-up (imports, first encoder) before the window
        cpu0, t0 = cpu_seconds(edge.proc.pid), time.monotonic()
        time.sleep(args.seconds)
        return (cpu_seconds(edge.proc.pid) - cpu0) / (time.monotonic() - t0)
    finally:
        edge.stop()


def edge_flags(description: str, seconds: float, rounds: int) -> argparse.ArgumentParser:
    """The flags of an edge-against-a-hub benchmark (this one and edge_motion.py)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--seconds", type=float, default=seconds)
    p.add_argument("--fps", default="15")
    p.add_argument("--size", default="1280x720")
    p.add_argument("--bitrate", default="2M")
    p.add_argument("--rounds", type=int, default=rounds)
    return p


@contextlib.contextmanager
def bench_hub(work: Path) -> Iterator[int]:
    """A real hub with its storage and catalog in ``work``; yields its port, stops it after."""
    port = free_port()
    hub = Process([sys.executable, "-m", "recorder", "--listen", f"127.0.0.1:{port}",
                   "--storage", str(work / "rec"), "--db", f"sqlite:///{work / 'nvr.db'}"], work)
    try:
        hub.wait_line(r"hub listening on", 60)
        yield port
    finally:
        hub.stop()


def main() -> int:
    """Parse the flags, run the hub and the edges, print the figures."""
    parser = edge_flags(__doc__.splitlines()[0], seconds=60.0, rounds=1)
    parser.add_argument("--protocol", choices=("2", "3"), default="3",
                        help="the live stream's ingest protocol (3, the edge's default)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edge-spool-bench-") as tmp, \
            bench_hub(Path(tmp)) as port:
        on, off = [], []
        for _ in range(args.rounds):
            on.append(measure(port, Path(tmp), True, args))
            off.append(measure(port, Path(tmp), False, args))
    a, b = statistics.median(on), statistics.median(off)
    print(f"edge CPU, --camera test --fps {args.fps} --size {args.size} --bitrate {args.bitrate} "
          f"--protocol {args.protocol}, {args.seconds:g} s x {args.rounds}:")
    print(f"  spool on : {a:.3f} CPU s per s   ({', '.join(f'{x:.3f}' for x in on)})")
    print(f"  spool off: {b:.3f} CPU s per s   ({', '.join(f'{x:.3f}' for x in off)})")
    print(f"  spool costs {100 * (a - b) / b:+.1f} % (target: at most +5 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
