#!/usr/bin/env python3
"""Alert latency benchmark: from losing an edge to the offline email accepted by "SendGrid".

For each segment length in --segment-seconds (default 2,10) it starts one real hub
(`python -m recorder ... --config hub.toml`) whose alerts go to a SendGrid stand-in on 127.0.0.1
(tests/support/sendgrid_stub.py), then runs --trials trials (default 5) of each mode in --modes:

  kill    a real edge (`python -m edge ... --camera test --fps 10 --size 640x360`) records until
          its first segment is cataloged and its new_camera email has arrived; then the edge
          process gets SIGKILL. The kernel closes its TCP connection at once.
  silent  the edge's host vanishes without closing TCP: a raw socket client sends a valid
          chunked MPEG-TS POST (2 s of H.264 from the bundled ffmpeg) and then sends nothing
          while it keeps the socket open. Only the hub's stall_timeout (default 15 s) notices.

The latency of a trial runs from the SIGKILL (kill) or the client's last byte (silent) to the
moment the stand-in accepts (answers 202 to) the email whose custom_args say kind 'offline' for
that camera. Every trial uses a new camera name, so the per-camera debounce (3 emails per 10 min)
never holds an email back. The hub's own detection time (its outage row's started_at) is shown
too, so you can tell detection from delivery. Target: under 2 x segment length + 15 s.

Usage: .venv/bin/python scripts/bench/alert_latency.py [--trials 5] [--segment-seconds 2,10]
           [--modes kill,silent] [--stall-timeout 15] [--json FILE] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.support.sendgrid_stub import Received, SendGridStub  # noqa: E402 - needs REPO first

API_KEY = "SG.bench-key"
OWNER = "owner@example.com"
SENDER = "nvr@example.com"
LOCATION = "bench"
TARGET_MARGIN = 15.0  # the target is 2 x segment length + this
MODES = ("kill", "silent")
EXPECTED_REASON = {"kill": "connection_lost", "silent": "stalled"}


# -- processes --------------------------------------------------------------------------------

def descendants(root: int) -> list[int]:
    """Pids of every live process under ``root``."""
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        ppid = int(data[data.rindex(b")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    found, todo = [], list(kids.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(kids.get(pid, []))
    return found


class Processes:
    """Every process this script starts, each in its own session; killed for good on exit."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def spawn(self, argv: list[str], log: Path, env: dict[str, str] | None = None
              ) -> subprocess.Popen[bytes]:
        """Start a process with its output in ``log``."""
        with open(log, "ab") as out:
            proc = subprocess.Popen(argv, cwd=str(REPO), env=env, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.started.append(proc)
        return proc

    def kill_all(self) -> None:
        """SIGKILL whatever still runs: each process's group and its live descendants
        (the hub's ffmpegs run in sessions of their own)."""
        for proc in self.started:
            if proc.poll() is None:
                below = descendants(proc.pid)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                for pid in below:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
        for proc in self.started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        self.started.clear()


def stop(proc: subprocess.Popen[bytes], timeout: float) -> int | None:
    """SIGTERM a process and wait for it; return its exit code (None if it would not stop)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file."""
    try:
        return "\n".join(path.read_text("utf-8", "replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_for(predicate: Callable[[], object], timeout: float, what: str,
             alive: list[tuple[subprocess.Popen[bytes], Path]]) -> object:
    """Poll ``predicate`` until it is truthy; fail at the deadline or when a process dies."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        for proc, log in alive:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args[1:3]} exited ({proc.returncode}) while waiting "
                                   f"for {what}:\n{tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


# -- the hub's side ---------------------------------------------------------------------------

def alert_environment(stub: SendGridStub) -> dict[str, str]:
    """This environment without any real SendGrid/alert settings, pointed at the stand-in."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SENDGRID_", "ALERT_"))}
    env.update(SENDGRID_API_KEY=API_KEY, SENDGRID_API_HOST=stub.url, ALERT_EMAIL_TO=OWNER,
               ALERT_EMAIL_FROM=SENDER)
    return env


def hub_config(stall_timeout: float) -> str:
    """The hub's config file: the defaults, written down, and no disk-low email."""
    return (f"# written by scripts/bench/alert_latency.py\n"
            f"stall_timeout = {stall_timeout:g}  # how long a silent connection is kept\n"
            "[alerts]\n"
            "# a disk-low email would only queue ahead of the ones measured here\n"
            "disk_low_percent = 0\n"
            "# debounce left at its default (3 per camera per 10 min): every trial has a new camera\n")


def count_segments(db: Path, camera: str) -> int:
    """How many segments of a camera the catalog holds (0 while it cannot be read)."""
    try:
        with contextlib.closing(sqlite3.connect(db, timeout=5)) as conn:
            return conn.execute("SELECT count(*) FROM segments s JOIN cameras c ON c.id ="
                                " s.camera_id WHERE c.name = ?", (camera,)).fetchone()[0]
    except sqlite3.Error:
        return 0


def first_outage(db: Path, camera: str) -> tuple[str, float] | None:
    """(reason, started_at as a Unix time) of a camera's first outage, if it has one."""
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
        row = conn.execute("SELECT o.reason, o.started_at FROM outages o JOIN cameras c ON c.id"
                           " = o.camera_id WHERE c.name = ? ORDER BY o.id LIMIT 1",
                           (camera,)).fetchone()
    if row is None:
        return None
    started = dt.datetime.fromisoformat(row[1])
    if started.tzinfo is None:  # SQLite keeps UTC without a zone
        started = started.replace(tzinfo=dt.timezone.utc)
    return row[0], started.timestamp()


def of_kind(kind: str, camera: str) -> Callable[[Any], bool]:
    """A predicate on a mail's JSON: this alert kind for this camera (from its custom_args)."""
    def match(mail: Any) -> bool:
        args = mail.get("custom_args", {}) if isinstance(mail, dict) else {}
        return args.get("kind") == kind and args.get("camera") == camera
    return match


def encode_ts(ffmpeg: str) -> bytes:
    """Two seconds of real H.264 (640x360, 10 fps, 1 s GOP) in MPEG-TS."""
    argv = [ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "lavfi",
            "-i", "testsrc2=size=640x360:rate=10", "-t", "2", "-c:v", "libx264", "-g", "10",
            "-pix_fmt", "yuv420p", "-f", "mpegts", "pipe:1"]
    return subprocess.run(argv, check=True, capture_output=True, timeout=60).stdout


def chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


# -- trials -----------------------------------------------------------------------------------

@dataclasses.dataclass
class Trial:
    """One camera lost once, and how long the email took."""

    mode: str
    segment_seconds: float
    camera: str
    latency: float | None = None  # seconds from the loss to the stand-in's 202
    detected: float | None = None  # seconds from the loss to the hub's outage row
    reason: str | None = None  # the outage's reason as the hub recorded it
    error: str | None = None


class HubRun:
    """One hub (and its stand-in) for one segment length; runs trials against it."""

    def __init__(self, args: argparse.Namespace, work: Path, segment_seconds: float,
                 procs: Processes, ts: bytes | None) -> None:
        self.args, self.procs, self.ts = args, procs, ts
        self.segment_seconds = segment_seconds
        self.root = work / f"seg-{segment_seconds:g}"
        self.root.mkdir()
        self.db = self.root / "nvr.db"
        self.log = self.root / "hub.log"
        self.port = free_port()
        self.stub = SendGridStub(api_key=API_KEY)
        self.hub: subprocess.Popen[bytes] | None = None

    @property
    def target(self) -> float:
        """The latency to stay under: 2 x segment length + 15 s."""
        return 2 * self.segment_seconds + TARGET_MARGIN

    def start(self) -> None:
        """Start the stand-in and the hub, and wait until the hub listens."""
        self.stub.start()
        config = self.root / "hub.toml"
        config.write_text(hub_config(self.args.stall_timeout))
        argv = [sys.executable, "-m", "recorder", "--listen", f"127.0.0.1:{self.port}",
                "--storage", str(self.root / "storage"), "--db", f"sqlite:///{self.db}",
                "--segment-seconds", f"{self.segment_seconds:g}", "--config", str(config)]
        self.hub = self.procs.spawn(argv, self.log, env=alert_environment(self.stub))
        wait_for(lambda: "hub listening on" in self.log.read_text("utf-8", "replace"), 60,
                 "the hub to listen", [(self.hub, self.log)])

    def close(self) -> str | None:
        """Stop the hub (SIGTERM) and the stand-in; say what went wrong, if anything."""
        problem = None
        if self.hub is not None:
            code = stop(self.hub, 30)
            if code != 0:
                problem = f"the hub exited with {code}:\n{tail(self.log)}"
        self.stub.stop()
        return problem

    def mail_wait(self) -> float:
        """How long to wait for an offline email before the trial counts as missed."""
        return max(3 * self.target, 2 * self.args.stall_timeout + 30)

    def offline_mail(self, camera: str) -> Received:
        """Wait for the camera's offline email to be accepted by the stand-in."""
        return self.stub.wait_for(of_kind("offline", camera), self.mail_wait())

    def finish(self, trial: Trial, lost_mono: float, lost_wall: float) -> None:
        """Measure a trial whose camera was lost at the given instants."""
        mail = self.offline_mail(trial.camera)
        assert mail.answered_at is not None  # accepted mails have been answered
        trial.latency = mail.answered_at - lost_mono
        outage = first_outage(self.db, trial.camera)
        if outage is not None:
            trial.reason, trial.detected = outage[0], outage[1] - lost_wall
        if trial.reason != EXPECTED_REASON[trial.mode]:
            trial.error = f"outage reason {trial.reason!r}, expected {EXPECTED_REASON[trial.mode]!r}"

    def kill_trial(self, camera: str) -> Trial:
        """Record with a real edge until it is cataloged and announced, then SIGKILL it."""
        trial = Trial("kill", self.segment_seconds, camera)
        assert self.hub is not None
        log = self.root / f"edge-{camera}.log"
        argv = [sys.executable, "-m", "edge", "--hub", "127.0.0.1", "--port", str(self.port),
                "--location", LOCATION, "--camera", "test", "--name", camera,
                "--fps", "10", "--size", "640x360"]
        edge = self.procs.spawn(argv, log)
        try:
            wait_for(lambda: count_segments(self.db, camera), 60 + 3 * self.segment_seconds,
                     f"{camera}'s first segment", [(self.hub, self.log), (edge, log)])
            self.stub.wait_for(of_kind("new_camera", camera), 30)
            lost_wall, lost_mono = time.time(), time.monotonic()
            os.kill(edge.pid, signal.SIGKILL)
            edge.wait(10)
            self.finish(trial, lost_mono, lost_wall)
        except (RuntimeError, AssertionError) as exc:
            trial.error = str(exc).splitlines()[0]
        finally:
            if edge.poll() is None:
                stop(edge, 10)
        return trial

    def silent_trial(self, camera: str) -> Trial:
        """Send 2 s of MPEG-TS over a raw socket, then nothing while the socket stays open."""
        trial = Trial("silent", self.segment_seconds, camera)
        assert self.ts is not None
        head = (f"POST /ingest/v1/{camera} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                "Content-Type: video/mp2t\r\nTransfer-Encoding: chunked\r\n"
                f"X-NVR-Location: {LOCATION}\r\n\r\n").encode()
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
                sock.sendall(head + chunk(self.ts))
                lost_wall, lost_mono = time.time(), time.monotonic()
                self.finish(trial, lost_mono, lost_wall)
                # the camera was announced before it went offline, as with a real edge
                if not any(of_kind("new_camera", camera)(r.json) for r in self.stub.accepted):
                    trial.error = trial.error or "no new_camera email"
        except (OSError, AssertionError) as exc:
            trial.error = str(exc).splitlines()[0]
        return trial


# -- report -----------------------------------------------------------------------------------

@dataclasses.dataclass
class Row:
    """The trials of one mode at one segment length."""

    mode: str
    segment_seconds: float
    trials: list[Trial]

    @property
    def target(self) -> float:
        return 2 * self.segment_seconds + TARGET_MARGIN

    @property
    def latencies(self) -> list[float]:
        return [t.latency for t in self.trials if t.latency is not None]

    @property
    def passed(self) -> bool:
        """Every trial's email arrived, for the right reason, under the target."""
        return bool(self.trials) and all(
            t.error is None and t.latency is not None and t.latency < self.target
            for t in self.trials)

    def as_json(self) -> dict[str, Any]:
        """The row with its trials, for --json."""
        got = self.latencies
        return {"mode": self.mode, "segment_seconds": self.segment_seconds,
                "target_seconds": self.target, "passed": self.passed,
                "min": min(got, default=None), "median": statistics.median(got) if got else None,
                "max": max(got, default=None),
                "trials": [dataclasses.asdict(t) for t in self.trials]}


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_table(rows: list[Row], stall_timeout: float) -> None:
    print()
    print("Seconds from losing an edge to the offline email accepted by the SendGrid stand-in. "
          f"Target < 2 x segment + {TARGET_MARGIN:g} s.")
    header = (f"{'mode':<7} {'seg s':>5} {'trials':>6} {'min':>6} {'median':>6} {'max':>6}  "
              f"{'target':>6}  {'result':<6}  {'hub detected (median)':>21}")
    print(header)
    print("-" * len(header))
    for row in rows:
        got = row.latencies
        detected = [t.detected for t in row.trials if t.detected is not None]
        print(f"{row.mode:<7} {row.segment_seconds:>5g} {len(got):>3}/{len(row.trials):<2} "
              f"{seconds(min(got, default=None)):>6} "
              f"{seconds(statistics.median(got) if got else None):>6} "
              f"{seconds(max(got, default=None)):>6}  {row.target:>6.1f}  "
              f"{'pass' if row.passed else 'FAIL':<6}  "
              f"{seconds(statistics.median(detected) if detected else None):>21}")
    print()
    print("kill = SIGKILL of a recording edge (the kernel closes its TCP connection); "
          "silent = the edge's host goes quiet with the TCP connection left open "
          f"(the hub's stall_timeout = {stall_timeout:g} s decides).")
    print("hub detected = from the loss to the outage the hub recorded (its started_at); "
          "the rest of the latency is storing and sending the email.")
    for row in rows:
        for trial in row.trials:
            if trial.error:
                print(f"{trial.mode} seg {trial.segment_seconds:g} {trial.camera}: {trial.error}")


# -- main -------------------------------------------------------------------------------------

def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=5, help="trials per mode and segment length "
                   "(default 5)")
    p.add_argument("--segment-seconds", default="2,10", help="comma-separated segment lengths; "
                   "one hub each (default 2,10)")
    p.add_argument("--modes", default="kill,silent", help="comma-separated: kill, silent "
                   "(default both)")
    p.add_argument("--stall-timeout", type=float, default=15.0, help="the hub's stall_timeout "
                   "(default 15, the hub's default)")
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (prints its path)")
    args = p.parse_args(argv)
    args.segment_seconds = [float(s) for s in args.segment_seconds.split(",") if s.strip()]
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in args.modes if m not in MODES]
    if bad or args.trials < 1:
        p.error(f"unknown mode {bad[0]!r}" if bad else "--trials must be at least 1")
    return args


@contextlib.contextmanager
def workdir(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="alert-latency-"))
    try:
        yield path
    finally:
        if keep:
            print(f"kept {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


def run_hub(args: argparse.Namespace, work: Path, segment_seconds: float, procs: Processes,
            ts: bytes | None, names: Iterator[str]) -> tuple[list[Row], str | None]:
    """Every mode's trials against one hub; return the rows and any problem stopping the hub."""
    run = HubRun(args, work, segment_seconds, procs, ts)
    rows: list[Row] = []
    try:
        run.start()
        for mode in args.modes:
            row = Row(mode, segment_seconds, [])
            rows.append(row)
            for k in range(1, args.trials + 1):
                name = next(names)
                trial = run.kill_trial(name) if mode == "kill" else run.silent_trial(name)
                row.trials.append(trial)
                print(f"[seg {segment_seconds:g}] {mode} {k}/{args.trials} {name}: "
                      f"{seconds(trial.latency)} s (hub detected {seconds(trial.detected)} s, "
                      f"{trial.reason}){' ' + trial.error if trial.error else ''}", file=sys.stderr)
    finally:
        problem = run.close()
    return rows, problem


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    from nvrlib.ffmpeg_bin import ffmpeg_exe

    procs = Processes()
    rows: list[Row] = []
    problems: list[str] = []
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    for signum in previous:  # turn kill/hang-up into an exception, so `finally` cleans up
        signal.signal(signum, lambda *_: sys.exit(1))
    try:
        with workdir(args.keep) as work, contextlib.ExitStack() as cleanup:
            cleanup.callback(procs.kill_all)  # before the work dir goes
            ts = encode_ts(ffmpeg_exe()) if "silent" in args.modes else None
            names = (f"cam{n}" for n in range(1, 10_000))
            for segment_seconds in args.segment_seconds:
                print(f"hub with {segment_seconds:g} s segments ...", file=sys.stderr)
                got, problem = run_hub(args, work, segment_seconds, procs, ts, names)
                rows.extend(got)
                if problem:
                    problems.append(problem)
    finally:
        procs.kill_all()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    print_table(rows, args.stall_timeout)
    for problem in problems:
        print(problem)
    if args.json is not None:
        args.json.write_text(json.dumps({"stall_timeout": args.stall_timeout,
                                         "rows": [r.as_json() for r in rows],
                                         "problems": problems}, indent=2) + "\n")
    return 0 if rows and all(r.passed for r in rows) and not problems else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
