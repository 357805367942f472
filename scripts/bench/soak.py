"""Soak: many synthetic cameras for a while under random faults; print what was lost.

By hand, not in CI (a 10-minute run is the figure the issue asks for):

    .venv/bin/python scripts/bench/soak.py --cameras 16 --minutes 10

It runs a real hub and real edges (`python -m edge --camera test`, store-and-forward on), each
edge behind its own loopback TCP proxy, and at random moments cuts a proxy's link (the network
drops), SIGKILLs the hub (then starts it again) or SIGKILLs an edge (then starts it again).
After the faults it lets the spools drain, stops everything cleanly and prints:

- segments cataloged (and how many of them were back-filled from an edge's spool);
- seconds lost per camera: the wall-clock span the camera was capturing (from its first
  segment to the clean stop, minus the windows when its own edge process was dead, which
  captures nothing) that no cataloged segment covers;
- the hub's resident memory and open descriptors some seconds after its last start and at the
  end of the run (flat is the target), and at the first start for comparison.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from nvrlib.catalog.models import Camera, Segment  # noqa: E402
from tests.support.tcp_proxy import TcpProxy  # noqa: E402

PYTHON = sys.executable
WARMUP_SECONDS = 20.0
DRAIN_TIMEOUT = 600.0


@dataclasses.dataclass
class Sample:
    """The hub's memory and descriptors at one moment."""

    label: str
    pid: int
    rss_kib: int
    fds: int


def sample(label: str, pid: int) -> Sample | None:
    """Read VmRSS and the number of open descriptors of a process from /proc."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    rss = next((int(line.split()[1]) for line in status.splitlines()
                if line.startswith("VmRSS:")), 0)
    return Sample(label, pid, rss, fds)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Soak:
    """The processes of one soak run and the faults done to them."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args, self.work = args, work
        self.rng = random.Random(args.seed)
        self.port = free_port()
        self.hub: subprocess.Popen[bytes] | None = None
        self.edges: list[subprocess.Popen[bytes] | None] = []
        self.proxies: list[TcpProxy] = []
        self.names = [f"soak-{i:02d}" for i in range(args.cameras)]
        self.groups = [self.names[i::args.edges] for i in range(args.edges)]
        self.edge_down: dict[int, list[tuple[float, float]]] = {i: [] for i in range(args.edges)}
        self.faults: dict[str, int] = {"cut": 0, "hub_kill": 0, "edge_kill": 0}
        self.samples: list[Sample] = []
        self.hub_log = open(work / "hub.log", "ab")  # noqa: SIM115 - closed in stop_all
        self.lock = threading.Lock()
        # a shared ingest token, as a real site has: edges that present it are the owner's
        self.token_file = work / "ingest.token"
        self.token_file.write_text(secrets.token_urlsafe(24))
        self.token_file.chmod(0o600)

    # -- processes ---------------------------------------------------------------------------

    def start_hub(self) -> None:
        """Start the hub and wait until it listens."""
        argv = [PYTHON, "-m", "recorder", "--listen", f"127.0.0.1:{self.port}",
                "--token-file", str(self.token_file),
                "--storage", str(self.work / "recordings"),
                "--db", f"sqlite:///{self.work / 'nvr.db'}",
                "--segment-seconds", str(self.args.segment_seconds), "--log-level", "WARNING"]
        self.hub = subprocess.Popen(argv, cwd=ROOT, stdout=self.hub_log, stderr=self.hub_log,
                                    start_new_session=True)
        self._wait_listening()

    def _wait_listening(self) -> None:
        import socket
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.hub is not None
            if self.hub.poll() is not None:
                raise SystemExit(f"the hub exited ({self.hub.returncode}); see {self.work}/hub.log")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 1):
                return
            time.sleep(0.2)
        raise SystemExit("the hub did not listen within 60 s")

    def start_edge(self, index: int) -> subprocess.Popen[bytes]:
        """Start edge ``index`` with its cameras, through its proxy."""
        argv = [PYTHON, "-m", "edge", "--hub", "127.0.0.1", "--port", str(self.proxies[index].port),
                "--location", "soak", "--fps", str(self.args.fps), "--size", self.args.size,
                "--bitrate", self.args.bitrate, "--spool-dir", str(self.work / f"spool-{index}"),
                "--token-file", str(self.token_file),
                "--log-level", "INFO"]
        for name in self.groups[index]:
            argv += ["--camera", "test", "--name", name]
        log = open(self.work / f"edge-{index}.log", "ab")  # noqa: SIM115 - owned by the child
        return subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=log, start_new_session=True)

    def start_all(self) -> None:
        """Start the hub, one proxy and one edge per group."""
        self.start_hub()
        for index in range(self.args.edges):
            self.proxies.append(TcpProxy(self.port).start())
            self.edges.append(self.start_edge(index))

    def stop_all(self) -> None:
        """Stop the edges (SIGTERM), then the hub, then the proxies."""
        for proc in self.edges:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.edges:
            if proc is not None:
                _wait_or_kill(proc, 30)
        if self.hub is not None and self.hub.poll() is None:
            self.hub.send_signal(signal.SIGTERM)
            _wait_or_kill(self.hub, 60)
        for proxy in self.proxies:
            proxy.stop()
        self.hub_log.close()

    # -- faults --------------------------------------------------------------------------------

    def fault(self) -> None:
        """Do one random fault."""
        kind = self.rng.choice(self.args.faults)
        self.faults[kind] += 1
        if kind == "cut":
            index = self.rng.randrange(self.args.edges)
            seconds = self.rng.uniform(5, self.args.max_cut)
            print(f"  {_now()} cut edge {index}'s link for {seconds:.0f} s", flush=True)
            self.proxies[index].cut()
            threading.Timer(seconds, self.proxies[index].restore).start()
        elif kind == "hub_kill":
            assert self.hub is not None
            print(f"  {_now()} SIGKILL the hub", flush=True)
            self.hub.kill()
            self.hub.wait()
            time.sleep(self.rng.uniform(0.5, 5))
            self.start_hub()
            self.note_hub_started()
        else:
            index = self.rng.randrange(self.args.edges)
            proc = self.edges[index]
            assert proc is not None
            print(f"  {_now()} SIGKILL edge {index}", flush=True)
            down = time.time()
            proc.kill()
            proc.wait()
            time.sleep(self.rng.uniform(1, 5))
            log = self.work / f"edge-{index}.log"
            starts = log.read_text().count(": starting: ")
            self.edges[index] = self.start_edge(index)
            # an edge captures nothing until it has started (Python, OpenCV and PyAV load first)
            deadline = time.monotonic() + 30
            while log.read_text().count(": starting: ") < starts + len(self.groups[index]) and \
                    time.monotonic() < deadline:
                time.sleep(0.05)
            self.edge_down[index].append((down, time.time()))

    def note_hub_started(self) -> None:
        """Sample the hub some seconds after it started (in the background)."""
        assert self.hub is not None
        pid = self.hub.pid

        def later() -> None:
            time.sleep(WARMUP_SECONDS)
            taken = sample("after a start", pid)
            if taken is not None:
                with self.lock:
                    self.samples.append(taken)

        threading.Thread(target=later, daemon=True).start()

    def drain(self) -> float:
        """Wait until every edge's spool holds nothing but the live tail; return the seconds."""
        began = time.monotonic()
        deadline = began + DRAIN_TIMEOUT
        while time.monotonic() < deadline:
            if all(_spooled_bytes(self.work / f"spool-{i}") <= self.args.drain_slack
                   for i in range(self.args.edges)):
                break
            time.sleep(1)
        return time.monotonic() - began


def _spooled_bytes(folder: Path) -> int:
    if not folder.exists():
        return 0
    return sum(p.stat().st_size for p in folder.rglob("*.ts") if p.is_file())


def _wait_or_kill(proc: subprocess.Popen[bytes], timeout: float) -> None:
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _now() -> str:
    return dt.datetime.now().strftime("%H:%M:%S")


def read_catalog(db: Path) -> dict[str, list[tuple[float, float, bool]]]:
    """Every camera's segments as (start, end, backfilled) in Unix seconds."""
    engine = create_engine(f"sqlite:///{db}")
    spans: dict[str, list[tuple[float, float, bool]]] = {}
    with Session(engine) as session:
        rows = session.execute(select(Camera.name, Segment.start_time, Segment.end_time,
                                      Segment.backfilled).join(Camera)
                               .where(Segment.status == "ok"))
        for name, start, end, backfilled in rows:
            spans.setdefault(name, []).append((start.timestamp(), end.timestamp(), backfilled))
    engine.dispose()
    return spans


def gaps(window: tuple[float, float], spans: list[tuple[float, float]],
         excluded: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The stretches of ``window`` that neither a span nor an excluded interval covers."""
    holes, cursor = [], window[0]
    for start, end in sorted([*spans, *excluded]):
        start, end = max(start, window[0]), min(end, window[1])
        if end <= cursor:
            continue
        if start > cursor:
            holes.append((cursor, start))
        cursor = max(cursor, end)
    if window[1] > cursor:
        holes.append((cursor, window[1]))
    return holes


def report(soak: Soak, began: float, stopped: float, drain_seconds: float) -> int:
    """Print the figures; return 1 if footage was lost."""
    catalog = read_catalog(soak.work / "nvr.db")
    frame = 1.0 / soak.args.fps
    print(f"\nfaults: {soak.faults}; drain after the faults: {drain_seconds:.0f} s")
    print(f"seconds lost: all gaps, and gaps longer than one frame ({frame:.2f} s: a catalog row's "
          "end may leave out its last frame's duration)")
    print(f"{'camera':10} {'segments':>8} {'backfilled':>10} {'lost s':>8} {'> 1 frame':>10}")
    total_lost, total_long, total_segments, total_backfilled = 0.0, 0.0, 0, 0
    long_gaps: list[tuple[str, float, float]] = []
    for index, group in enumerate(soak.groups):
        for name in group:
            rows = catalog.get(name, [])
            first = min((start for start, _, _ in rows), default=began)
            # the last second before the clean stop may still be in the segment being closed
            window = (max(first, began), stopped - soak.args.segment_seconds)
            holes = gaps(window, [(s, e) for s, e, _ in rows], soak.edge_down[index])
            lost = sum(b - a for a, b in holes)
            longer = [(a, b) for a, b in holes if b - a > 1.5 * frame]
            long_gaps += [(name, a, b) for a, b in longer]
            backfilled = sum(1 for *_, b in rows if b)
            total_lost += lost
            total_long += sum(b - a for a, b in longer)
            total_segments += len(rows)
            total_backfilled += backfilled
            print(f"{name:10} {len(rows):8d} {backfilled:10d} {lost:8.1f} "
                  f"{sum(b - a for a, b in longer):10.1f}")
    print(f"{'all':10} {total_segments:8d} {total_backfilled:10d} {total_lost:8.1f} "
          f"{total_long:10.1f}")
    for name, start, end in long_gaps[:40]:
        print(f"  gap {name} {_clock(start)} - {_clock(end)} ({end - start:.2f} s)")
    print("\nhub memory and descriptors:")
    for taken in soak.samples:
        print(f"  {taken.label:18} pid {taken.pid:7d}  RSS {taken.rss_kib / 1024:7.1f} MiB  "
              f"fds {taken.fds}")
    return 1 if total_long > 0 else 0


def _clock(unix: float) -> str:
    return dt.datetime.fromtimestamp(unix).strftime("%H:%M:%S.%f")[:-4]


@contextlib.contextmanager
def workdir(keep: bool) -> Iterator[Path]:
    """A temporary folder, removed at the end unless asked to keep it."""
    path = Path(tempfile.mkdtemp(prefix="nvr-soak-"))
    try:
        yield path
    finally:
        if keep:
            print(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The benchmark's flags."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--cameras", type=int, default=16)
    p.add_argument("--edges", type=int, default=4, help="edge processes sharing the cameras")
    p.add_argument("--minutes", type=float, default=10.0, help="how long faults go on")
    p.add_argument("--segment-seconds", type=int, default=4)
    p.add_argument("--fps", type=int, default=10)
    p.add_argument("--size", default="640x360")
    p.add_argument("--bitrate", default="300k")
    p.add_argument("--fault-every", type=float, nargs=2, default=(20.0, 60.0),
                   metavar=("MIN", "MAX"), help="seconds between faults, drawn uniformly")
    p.add_argument("--max-cut", type=float, default=60.0, help="longest network cut, seconds")
    p.add_argument("--faults", nargs="+", default=["cut", "hub_kill", "edge_kill"],
                   choices=["cut", "hub_kill", "edge_kill"])
    p.add_argument("--drain-slack", type=int, default=2_000_000,
                   help="bytes per edge spool that count as drained (the live tail)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    """Run the soak and print its figures."""
    args = parse_args(argv)
    args.edges = max(1, min(args.edges, args.cameras))
    with workdir(args.keep) as work:
        soak = Soak(args, work)
        print(f"soak: {args.cameras} cameras on {args.edges} edges, {args.minutes:g} min of "
              f"faults, work folder {work}", flush=True)
        try:
            soak.start_all()
            began = time.time()
            time.sleep(WARMUP_SECONDS)
            first = sample("first start", soak.hub.pid) if soak.hub else None
            if first:
                soak.samples.append(first)
            end = time.monotonic() + args.minutes * 60
            while time.monotonic() < end:
                time.sleep(min(soak.rng.uniform(*args.fault_every), max(0, end - time.monotonic())))
                if time.monotonic() < end:
                    soak.fault()
            time.sleep(args.max_cut + 2)  # every cut restored
            drain_seconds = soak.drain()
            last = sample("end", soak.hub.pid) if soak.hub else None
            if last:
                soak.samples.append(last)
            stopped = time.time()
        finally:
            soak.stop_all()
        return report(soak, began, stopped, drain_seconds)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
