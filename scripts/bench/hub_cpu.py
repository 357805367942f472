#!/usr/bin/env python3
"""Hub CPU benchmark: CPU seconds per stream-minute of the hub vs. bare `ffmpeg -c copy`.

For each N in --streams (default 4,16,64) it runs, one after the other:

  bare-pipe  N x (pusher `ffmpeg -re -stream_loop -1 -i in.ts -c copy -f mpegts pipe:1`
             | segmenter `ffmpeg -f mpegts -i pipe:0 <the hub's segment options>`), counting
             only the segmenters: the like-for-like denominator of the ratio;
  hub        `python -m recorder` fed by N stock ffmpeg pushers over HTTP (`-re -stream_loop -1
             -c copy -f mpegts http://.../ingest/v1/benchK`), counting the hub process and every
             process under it (its ffmpeg segmenters), not the pushers;
  bare-file  N x `ffmpeg -re -stream_loop -1 -i in.ts <segment options>`, for information only
             (here the -re file reading is part of the measured process).

CPU = utime + stime (+ cutime + cstime of reaped children) from /proc/<pid>/stat, read when the
window opens and when it closes; a window opens --warmup seconds after every stream has started
writing its first segment. After each hub run the pushers and then the hub are stopped with
SIGTERM and the results are checked: bytes each pusher wrote (its `-progress` total_size) against
the bytes the hub received for it, the catalog against the disk (sizes, nothing left behind), and
that each camera's segments tile in time (end of one == start of the next within one frame).
Each hub run also prints its threads' CPU over the window (`loop` = the event loop's main
thread, the others by thread id), from /proc/<pid>/task/*/stat.

The hub runs through a small shim (`hub_cpu.py _hub RESULTS ARGS...`): it is `python -m recorder
ARGS...` plus one hook on Hub.release (called once per connection, when it ends) that appends
the connection's byte counters to RESULTS. Nothing runs per chunk, so the CPU figures are the
hub's own. Pass --plain-hub to run exactly `python -m recorder` (then bytes lost is not measured).

The hub's own motion detection (issue 11: keyframes of stock pushers' segments decoded in the
hub) is turned off unless --hub-motion: it is a feature of its own, measured by
scripts/bench/hub_motion.py, not the cost of recording that this benchmark compares with ffmpeg.

With --pusher mux --protocol 3 the streams are version-3 requests (docs/design/protocol.md): the
hub hands each socket to its ffmpeg, and its byte counters come from the kernel (TCP_INFO).

Usage: .venv/bin/python scripts/bench/hub_cpu.py [--streams 4,16,64] [--seconds 30] [--warmup 5]
       .venv/bin/python scripts/bench/hub_cpu.py --streams 256 --pusher mux --no-bare --input-seconds 150
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import math
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
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

CLK_TCK = os.sysconf("SC_CLK_TCK")
SEGMENT_SECONDS = 10
FPS = 25
FRAME = 1.0 / FPS
RATIO_TARGET = 1.3
SATURATED_BUSY = 0.90  # share of all cores busy during a window
SATURATED_WAIT = 0.50  # share of the window some task waited for a CPU (pressure stall info)
REALTIME_MIN = 0.97  # share of real time the streams must keep up with


# -- the hub shim ----------------------------------------------------------------------------

def hub_shim(argv: list[str]) -> int:
    """Run `python -m recorder argv[1:]`, appending each connection's byte counters to argv[0]."""
    results = argv[0]
    from recorder import cli, hub

    original = hub.Hub.release

    def release(self: hub.Hub, camera: str, sink: object, *rest: object) -> None:
        stats = getattr(sink, "stats", None)
        if stats is not None:
            record = {"camera": camera, "bytes_in": stats.bytes_in,
                      "bytes_dropped": stats.bytes_dropped, "segments": stats.segments}
            with open(results, "a", encoding="utf-8") as out:
                out.write(json.dumps(record) + "\n")
        original(self, camera, sink, *rest)  # type: ignore[arg-type]

    hub.Hub.release = release  # type: ignore[method-assign]
    return cli.main(argv[1:])


# -- /proc accounting -------------------------------------------------------------------------

def read_stat(pid: int) -> tuple[int, int, int] | None:
    """Return (ppid, own ticks, reaped children's ticks) of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()
    # fields[0] is field 3 (state) of proc(5): ppid is 4, utime..cstime are 14..17
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return int(fields[1]), utime + stime, cutime + cstime


def thread_ticks(pid: int) -> dict[int, int]:
    """CPU ticks (utime + stime) of each live thread of a process, by thread id."""
    ticks = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return ticks
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue  # the thread ended
        fields = data[data.rindex(b")") + 2:].split()
        ticks[int(tid)] = int(fields[11]) + int(fields[12])
    return ticks


def all_stats() -> dict[int, tuple[int, int, int]]:
    """Read the stat of every process on the machine."""
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = read_stat(int(entry))
            if stat is not None:
                stats[int(entry)] = stat
    return stats


@dataclasses.dataclass
class TreeCpu:
    """CPU ticks of a process and everything under it, at one instant."""

    own: int = 0  # the root process itself (all its threads)
    children: int = 0  # its live descendants plus everything it reaped
    descendants: int = 0  # how many descendants are alive

    @property
    def total(self) -> int:
        return self.own + self.children


def tree_cpu(root: int) -> TreeCpu:
    """CPU of ``root`` and all its live descendants (reaped ones are in its cutime/cstime)."""
    stats = all_stats()
    if root not in stats:
        raise RuntimeError(f"process {root} is gone")
    kids: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in stats.items():
        kids.setdefault(ppid, []).append(pid)
    _, own, reaped = stats[root]
    cpu = TreeCpu(own=own, children=reaped)
    todo = list(kids.get(root, []))
    while todo:
        pid = todo.pop()
        _, ticks, reaped = stats[pid]
        cpu.children += ticks + reaped
        cpu.descendants += 1
        todo.extend(kids.get(pid, []))
    return cpu


def descendants(root: int) -> list[int]:
    """Pids of every live process under ``root``."""
    stats = all_stats()
    kids: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in stats.items():
        kids.setdefault(ppid, []).append(pid)
    found, todo = [], list(kids.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(kids.get(pid, []))
    return found


def procs_ticks(pids: list[int]) -> tuple[int, int]:
    """Sum of the CPU ticks of some processes, and how many of them were alive."""
    total = alive = 0
    for pid in pids:
        stat = read_stat(pid)
        if stat is not None:
            total += stat[1] + stat[2]
            alive += 1
    return total, alive


def machine_ticks() -> int:
    """CPU ticks of every process on the machine, reaped children included.

    Summed from /proc/<pid>/stat, which the kernel derives from the scheduler's exact run
    time. /proc/stat is not used: with tick-sampled accounting (no VIRT_CPU_ACCOUNTING) it misses
    most of a load made of many short wake-ups, which is exactly what this benchmark runs.
    """
    return sum(own + reaped for _, own, reaped in all_stats().values())


def cpu_pressure() -> float | None:
    """Seconds some task spent waiting for a CPU since boot (PSI), if the kernel has it."""
    try:
        with open("/proc/pressure/cpu", encoding="ascii") as f:
            for line in f:
                if line.startswith("some "):
                    return int(line.rsplit("total=", 1)[1]) / 1e6
    except (OSError, ValueError, IndexError):
        pass
    return None


def ts_bytes(root: Path) -> int:
    """Total size of the .ts files under a folder."""
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            if name.endswith(".ts"):
                with contextlib.suppress(OSError):
                    total += os.stat(os.path.join(folder, name)).st_size
    return total


def has_ts(folder: Path) -> bool:
    """Tell whether a folder (recursively) holds at least one .ts file."""
    return any(name.endswith(".ts") for _, _, files in os.walk(folder) for name in files)


# -- processes --------------------------------------------------------------------------------

class Processes:
    """Every process this script starts, each in its own session; killed for good on exit."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def spawn(self, argv: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        proc = subprocess.Popen(argv, start_new_session=True, **kwargs)  # type: ignore[call-overload]
        self.started.append(proc)
        return proc

    def kill_all(self) -> None:
        """SIGKILL whatever still runs: each started process's group and its live descendants
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


def stop(procs: list[subprocess.Popen[bytes]], timeout: float) -> list[int | None]:
    """SIGTERM processes, wait for them (all together) and return their exit codes."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(max(deadline - time.monotonic(), 0.1))
    return [proc.poll() for proc in procs]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate, timeout: float, what: str, alive: list[subprocess.Popen[bytes]]) -> None:  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until true; fail if it takes too long or a process in ``alive`` dies."""
    deadline = time.monotonic() + timeout
    while not predicate():
        for proc in alive:
            if proc.poll() is not None:
                raise RuntimeError(f"{what}: process {proc.args[0]!r} exited "  # type: ignore[index]
                                   f"with {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.2)


def read_progress(path: Path) -> dict[str, str]:
    """The last complete block of an ffmpeg -progress file (empty if none yet)."""
    last: dict[str, str] = {}
    block: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text("utf-8", "replace").splitlines():
            key, sep, value = line.partition("=")
            if not sep:
                continue
            block[key.strip()] = value.strip()
            if key.strip() == "progress":
                last, block = block, {}
    return last


def progress_position(path: Path) -> tuple[float, float]:
    """(media seconds written, wall time of that -progress block) of an ffmpeg."""
    try:
        out_time = int(read_progress(path).get("out_time_us", "0")) / 1e6
        return out_time, path.stat().st_mtime
    except (OSError, ValueError):
        return 0.0, 0.0


def tail(path: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n    ".join(path.read_text("utf-8", "replace").splitlines()[-lines:])
    return ""


def per_thread(before: dict[int, int], after: dict[int, int], root: int | None,
               seconds: float) -> list[tuple[str, float]]:
    """CPU seconds per minute of each thread over a window, busiest first (idle ones left out)."""
    rows = [("loop" if tid == root else str(tid),
             (ticks - before.get(tid, 0)) / CLK_TCK * 60 / seconds) for tid, ticks in after.items()]
    return sorted((row for row in rows if row[1] > 0), key=lambda row: -row[1])


# -- the benchmark ----------------------------------------------------------------------------

@dataclasses.dataclass
class Window:
    """What one measurement window saw."""

    seconds: float
    cpu: float  # CPU seconds of the measured processes
    cpu_own: float  # ... of which the root process itself (the hub's Python) when there is one
    side_cpu: float  # CPU seconds of the unmeasured feeders/pushers
    busy: float  # share of all cores busy, whole machine
    wait: float | None  # share of the window some task was waiting for a CPU (PSI "some")
    # media seconds per wall second of the -re readers (pushers/feeders), from their -progress;
    # None for bare-file, whose reader is the measured process (left without -progress)
    realtime: float | None
    # CPU seconds per minute of the root's threads, busiest first: "loop" is its main thread
    # (the hub's event loop), the others are named by thread id (the catalog's executor, ...)
    threads: list[tuple[str, float]] = dataclasses.field(default_factory=list)

    def per_stream_minute(self, streams: int) -> float:
        return self.cpu / (streams * self.seconds / 60.0) if self.seconds else math.nan


NOT_RUN = (Window(0.0, 0.0, 0.0, 0.0, 0.0, None, None), 0)  # a baseline left out (--no-bare)


@dataclasses.dataclass
class HubCheck:
    """Post-run checks of a hub run."""

    segments: int = 0
    catalog_bytes: int = 0  # sum of the cataloged segments' sizes
    disk_bytes: int = 0  # sum of the sizes of every .ts file under the storage
    sent: int | None = None  # bytes the pushers wrote
    received: int | None = None  # bytes the hub took in
    dropped: int | None = None  # bytes the hub dropped (buffer overflow while ffmpeg restarted)
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def lost(self) -> int | None:
        if self.sent is None or self.received is None or self.dropped is None:
            return None
        return self.sent - self.received + self.dropped


class Bench:
    """Runs the three variants for one stream count."""

    def __init__(self, args: argparse.Namespace, work: Path, source: Path, ffmpeg: str,
                 procs: Processes) -> None:
        self.args, self.work, self.source, self.ffmpeg, self.procs = args, work, source, ffmpeg, procs
        self.duration = media_duration(source)
        self.byte_rate = source.stat().st_size / self.duration

    def segment_output(self, folder: Path) -> list[str]:
        # exactly the hub's options (recorder/supervise/ffmpeg.py), with the list in a file, not a pipe
        return ["-map", "0:v:0", "-map", "0:a?", "-c", "copy",
                "-copyts", "-muxdelay", "0", "-muxpreload", "0",
                "-f", "segment", "-segment_time", f"{SEGMENT_SECONDS:g}",
                "-segment_format", "mpegts",
                "-segment_list", str(folder / "list.csv"), "-segment_list_type", "csv",
                str(folder / "%06d.ts")]

    def head(self) -> list[str]:
        return [self.ffmpeg, "-hide_banner", "-nostats", "-loglevel", "info"]

    def reader(self) -> list[str]:
        return [self.ffmpeg, "-hide_banner", "-nostats", "-nostdin", "-loglevel", "error",
                "-re", "-stream_loop", "-1", "-i", str(self.source), "-c", "copy"]

    def measure(self, measured: list[int], root: int | None, side: list[int],
                progress: list[Path]) -> Window:
        """Read CPU over one window; ``root`` is a process counted with its whole tree."""
        def snapshot() -> tuple[float, int, int, int, tuple[int, float | None],
                                list[tuple[float, float]], dict[int, int]]:
            tree = tree_cpu(root) if root is not None else TreeCpu()
            flat, _ = procs_ticks(measured)
            side_ticks, _ = procs_ticks(side)
            return (time.monotonic(), tree.total + flat, tree.own, side_ticks,
                    (machine_ticks(), cpu_pressure()), [progress_position(path) for path in progress],
                    thread_ticks(root) if root is not None else {})

        t0, cpu0, own0, side0, (busy0, wait0), pos0, threads0 = snapshot()
        time.sleep(self.args.seconds)
        t1, cpu1, own1, side1, (busy1, wait1), pos1, threads1 = snapshot()
        speeds = [(m1 - m0) / (w1 - w0) for (m0, w0), (m1, w1) in zip(pos0, pos1) if w1 > w0]
        return Window(seconds=t1 - t0, cpu=(cpu1 - cpu0) / CLK_TCK, cpu_own=(own1 - own0) / CLK_TCK,
                      side_cpu=(side1 - side0) / CLK_TCK,
                      busy=(busy1 - busy0) / CLK_TCK / ((t1 - t0) * (os.cpu_count() or 1)),
                      wait=(wait1 - wait0) / (t1 - t0) if wait0 is not None and wait1 is not None
                      else None,
                      realtime=(statistics.fmean(speeds) if len(speeds) == len(progress) and speeds
                                else (0.0 if progress else None)),
                      threads=per_thread(threads0, threads1, root, t1 - t0))

    # -- bare ffmpeg ---------------------------------------------------------------------------

    def bare(self, streams: int, piped: bool) -> tuple[Window, int]:
        name = "bare-pipe" if piped else "bare-file"
        root = self.work / f"{name}-{streams}"
        feeders: list[subprocess.Popen[bytes]] = []
        segmenters: list[subprocess.Popen[bytes]] = []
        folders = []
        try:
            for k in range(streams):
                folder = root / f"bench{k}"
                folder.mkdir(parents=True)
                folders.append(folder)
                log = open(folder / "ffmpeg.log", "wb")  # noqa: SIM115 - closed below
                if piped:
                    feeder = self.procs.spawn([*self.reader(), "-f", "mpegts", "-progress",
                                               str(folder / "progress.txt"), "pipe:1"],
                                              stdout=subprocess.PIPE, stderr=log)
                    feeders.append(feeder)
                    segmenters.append(self.procs.spawn(
                        [*self.head(), "-f", "mpegts", "-i", "pipe:0", *self.segment_output(folder)],
                        stdin=feeder.stdout, stdout=subprocess.DEVNULL, stderr=log))
                    assert feeder.stdout is not None
                    feeder.stdout.close()  # the segmenter holds the only read end now
                else:
                    segmenters.append(self.procs.spawn(
                        [*self.head(), "-nostdin", "-re", "-stream_loop", "-1", "-i",
                         str(self.source), *self.segment_output(folder)],
                        stdout=subprocess.DEVNULL, stderr=log))
                log.close()
            wait_for(lambda: all(has_ts(f) for f in folders), 60 + streams,
                     f"{name} x{streams} to start writing", feeders + segmenters)
            time.sleep(self.args.warmup)
            window = self.measure([p.pid for p in segmenters], None, [p.pid for p in feeders],
                                  [f / "progress.txt" for f in folders] if piped else [])
            for proc in feeders + segmenters:
                if proc.poll() is not None:
                    raise RuntimeError(f"{name}: a process exited during the window "
                                       f"({proc.returncode}); see {root}")
        finally:
            stop(feeders, 20)  # a piped segmenter ends its last segment at EOF
            stop(segmenters, 20)
        segments = sum(len(list(f.glob("*.ts"))) for f in folders)
        if not self.args.keep:
            shutil.rmtree(root, ignore_errors=True)
        return window, segments

    # -- the hub ---------------------------------------------------------------------------------

    def hub(self, streams: int) -> tuple[Window, HubCheck, int]:
        root = self.work / f"hub-{streams}"
        storage, progress = root / "storage", root / "progress"
        progress.mkdir(parents=True)
        results = root / "connections.jsonl"
        hub_log = root / "hub.log"
        port = free_port()
        # Every pusher comes from 127.0.0.1: lift the per-address caps that guard a real hub.
        config = root / "hub.toml"
        config.write_text(f"new_cameras_per_source = {streams + 1}\n"
                          f"max_connections_per_source = {streams + 8}\n"
                          f"max_streams = {max(streams, 256)}\n"
                          f"hub_motion = {'true' if self.args.hub_motion else 'false'}\n",
                          "utf-8")
        hub_args = ["--listen", f"127.0.0.1:{port}", "--storage", str(storage),
                    "--db", f"sqlite:///{root / 'nvr.db'}", "--config", str(config),
                    "--segment-seconds", f"{SEGMENT_SECONDS:g}"]
        if self.args.plain_hub:
            argv = [sys.executable, "-m", "recorder", *hub_args]
        else:
            argv = [sys.executable, str(Path(__file__).resolve()), "_hub", str(results), *hub_args]
        with open(hub_log, "wb") as log:
            hub = self.procs.spawn(argv, cwd=str(REPO), stdout=log, stderr=subprocess.STDOUT)
        pushers: list[subprocess.Popen[bytes]] = []
        check = HubCheck()
        try:
            wait_for(lambda: "hub listening on" in hub_log.read_text("utf-8", "replace"), 60,
                     "the hub to listen", [hub])
            if self.args.pusher == "mux":  # one light process for every stream
                with open(progress / "mux.log", "wb") as log:
                    pushers.append(self.procs.spawn(
                        [sys.executable, str(Path(__file__).with_name("mux_pusher.py")),
                         "--port", str(port), "--streams", str(streams), "--input",
                         str(self.source), "--progress-dir", str(progress),
                         "--protocol", str(self.args.protocol)],
                        stdout=subprocess.DEVNULL, stderr=log))
            for k in range(streams if self.args.pusher == "ffmpeg" else 0):
                with open(progress / f"bench{k}.log", "wb") as log:
                    pushers.append(self.procs.spawn(
                        [*self.reader(), "-f", "mpegts", "-progress", str(progress / f"bench{k}.txt"),
                         f"http://127.0.0.1:{port}/ingest/v1/bench{k}"],
                        stdout=subprocess.DEVNULL, stderr=log))
            incoming = [storage / f"bench{k}" / ".incoming" for k in range(streams)]
            wait_for(lambda: all(has_ts(f) for f in incoming), 60 + streams,
                     f"hub x{streams} to start writing", [hub, *pushers])
            time.sleep(self.args.warmup)
            window = self.measure([], hub.pid, [p.pid for p in pushers],
                                  [progress / f"bench{k}.txt" for k in range(streams)])
            children = tree_cpu(hub.pid).descendants
            if children != streams:
                check.problems.append(f"the hub had {children} child processes, not {streams}")
            for proc in pushers:
                if proc.poll() is not None:
                    raise RuntimeError(f"a pusher exited during the window ({proc.returncode}); "
                                       f"see {progress}")
            codes = stop(pushers, 30)
            if any(code is None for code in codes):
                check.problems.append("some pushers did not stop within 30 s")
            if not self.args.plain_hub:
                def lines() -> int:
                    return len(results.read_text().splitlines()) if results.exists() else 0
                with contextlib.suppress(RuntimeError):
                    wait_for(lambda: lines() >= streams, 60, "the hub to end every connection", [hub])
            codes = stop([hub], 60)
            if codes[0] is None:
                check.problems.append("the hub did not stop within 60 s of SIGTERM")
            elif codes[0] != 0:
                check.problems.append(f"the hub exited with {codes[0]}: {tail(hub_log)}")
        finally:
            stop(pushers, 10)
            stop([hub], 30)
        self.verify(streams, storage, root / "nvr.db", progress, results, check)
        if "ERROR" in hub_log.read_text("utf-8", "replace"):
            check.problems.append(f"the hub logged errors: {tail(hub_log)}")
        if not self.args.keep:
            shutil.rmtree(root, ignore_errors=True)
        return window, check, streams

    def verify(self, streams: int, storage: Path, db: Path, progress: Path, results: Path,
               check: HubCheck) -> None:
        """Bytes in vs. bytes out, catalog vs. disk, segments tiling in time."""
        cameras = [f"bench{k}" for k in range(streams)]
        sent: dict[str, int] = {}
        pushed_seconds: dict[str, float] = {}
        for cam in cameras:
            block = read_progress(progress / f"{cam}.txt")
            if block.get("progress") != "end" or not block.get("total_size", "").isdigit():
                check.problems.append(f"{cam}: the pusher did not report its final total_size")
                continue
            sent[cam] = int(block["total_size"])
            with contextlib.suppress(ValueError):
                pushed_seconds[cam] = int(block.get("out_time_us", "")) / 1e6
        if len(sent) == streams:
            check.sent = sum(sent.values())
        if not self.args.plain_hub and results.exists():
            records = {r["camera"]: r for r in map(json.loads, results.read_text().splitlines())}
            if set(records) == set(cameras):
                check.received = sum(r["bytes_in"] for r in records.values())
                check.dropped = sum(r["bytes_dropped"] for r in records.values())
            else:
                check.problems.append(f"the hub reported {len(records)} of {streams} connections")
            for cam in cameras:
                if cam in records and cam in sent and records[cam]["bytes_in"] != sent[cam]:
                    check.problems.append(f"{cam}: pusher wrote {sent[cam]} B, hub received "
                                          f"{records[cam]['bytes_in']} B")

        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            rows = conn.execute(
                "SELECT c.name, s.start_time, s.end_time, s.size_bytes, s.path, s.status, "
                "s.recovered FROM segments s JOIN cameras c ON c.id = s.camera_id "
                "ORDER BY c.name, s.start_time").fetchall()
            runs = dict(conn.execute("SELECT c.name, count(*) FROM runs r JOIN cameras c "
                                     "ON c.id = r.camera_id GROUP BY c.name").fetchall())
        by_camera: dict[str, list[tuple[dt.datetime, dt.datetime, int, str, str, int]]] = {}
        for name, start, end, size, path, status, recovered in rows:
            by_camera.setdefault(name, []).append(
                (dt.datetime.fromisoformat(start), dt.datetime.fromisoformat(end), size, path,
                 status, recovered))
        check.segments = len(rows)
        cataloged = set()
        for cam in cameras:
            segs = by_camera.get(cam, [])
            if not segs:
                check.problems.append(f"{cam}: no segment cataloged")
                continue
            if runs.get(cam) != 1:
                check.problems.append(f"{cam}: {runs.get(cam)} ffmpeg runs (restarts?)")
            for prev, nxt in zip(segs, segs[1:]):
                gap = (nxt[0] - prev[1]).total_seconds()
                if abs(gap) > FRAME + 1e-3:
                    check.problems.append(f"{cam}: {gap:+.3f} s between segments ending "
                                          f"{prev[1]:%H:%M:%S.%f} and starting {nxt[0]:%H:%M:%S.%f}")
            for start, end, size, path, status, recovered in segs:
                cataloged.add(path)
                disk = storage / path
                if status != "ok" or recovered:
                    check.problems.append(f"{cam}: segment {path} is {status}, recovered={recovered}")
                if not disk.exists():
                    check.problems.append(f"{cam}: cataloged segment {path} is not on disk")
                elif disk.stat().st_size != size:
                    check.problems.append(f"{cam}: {path} is {disk.stat().st_size} B on disk, "
                                          f"{size} B in the catalog")
            covered = (segs[-1][1] - segs[0][0]).total_seconds()
            if cam in pushed_seconds and abs(pushed_seconds[cam] - covered) > 2 * FRAME:
                check.problems.append(f"{cam}: pushed {pushed_seconds[cam]:.3f} s of media, "
                                      f"segments cover {covered:.3f} s")
        check.catalog_bytes = sum(row[3] for row in rows)
        check.disk_bytes = ts_bytes(storage)
        if check.catalog_bytes != check.disk_bytes:
            check.problems.append(f"the catalog holds {check.catalog_bytes} B of segments, the disk "
                                  f"{check.disk_bytes} B")
        for path in storage.rglob("*.ts"):
            relative = str(path.relative_to(storage))
            if relative not in cataloged:
                check.problems.append(f"{relative} is on disk but not in the catalog")


def media_duration(path: Path) -> float:
    """Seconds of media in a file (PyAV is a dependency of the hub)."""
    import av

    with av.open(str(path)) as container:
        if container.duration:
            return container.duration / 1_000_000
    raise RuntimeError(f"cannot tell the duration of {path}")


def encode_input(ffmpeg: str, target: Path, seconds: int) -> None:
    """Encode the one test input: 720p25 H.264 at ~2 Mbit/s CBR-ish, 1 s GOP, in MPEG-TS."""
    # noise keeps the encoder busy enough to actually spend the 2 Mbit/s (testsrc2 alone is
    # too easy and comes out far below the target bitrate)
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                    "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25,noise=alls=12:allf=t+u",
                    "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast",
                    "-tune", "zerolatency", "-g", "25", "-b:v", "2M", "-maxrate", "2M",
                    "-bufsize", "1M", "-pix_fmt", "yuv420p", "-f", "mpegts", str(target)],
                   check=True)


# -- report -------------------------------------------------------------------------------------

@dataclasses.dataclass
class Row:
    round: int
    streams: int
    hub: Window
    pipe: Window
    file: Window
    check: HubCheck
    bare_segments: tuple[int, int]

    @property
    def ratio(self) -> float:
        if not self.pipe.seconds:
            return math.nan
        return self.hub.per_stream_minute(self.streams) / self.pipe.per_stream_minute(self.streams)


def pct(value: float | None) -> str:
    return "    -" if value is None else f"{value * 100:>5.1f}"


def fmt_bytes(value: int | None) -> str:
    return "n/a" if value is None else f"{value:,}"


def print_table(rows: list[Row], cores: int, out: Path | None) -> None:
    print()
    print("CPU seconds per stream-minute (user+sys, all cores; lower is better). "
          f"Ratio = hub / bare-pipe, target <= {RATIO_TARGET}.")
    header = (f"{'N':>3}  {'hub':>6} {'(py':>6} {'ff)':>6}  {'bare-pipe':>9}  {'ratio':>5}  "
              f"{'bare-file':>9}  {'bytes lost':>10}  {'segments':>8}  "
              f"{'busy% hub/pipe/file':>19}  {'realtime% hub/pipe/file':>23}  {'pushers':>7}")
    print(header)
    print("-" * len(header))
    for row in rows:
        n = row.streams
        minutes = n * row.hub.seconds / 60.0
        py = row.hub.cpu_own / minutes
        ff = (row.hub.cpu - row.hub.cpu_own) / minutes
        ok = "" if row.ratio <= RATIO_TARGET else " !"
        print(f"{n:>3}  {row.hub.per_stream_minute(n):>6.3f} {py:>6.3f} {ff:>6.3f}  "
              f"{row.pipe.per_stream_minute(n):>9.3f}  {row.ratio:>5.2f}{ok:2}"
              f"{row.file.per_stream_minute(n):>9.3f}  {fmt_bytes(row.check.lost):>10}  "
              f"{row.check.segments:>8}  "
              f"{row.hub.busy * 100:>5.0f}/{row.pipe.busy * 100:>3.0f}/{row.file.busy * 100:>3.0f}"
              f"{'':8}{pct(row.hub.realtime)}/{pct(row.pipe.realtime)}/{pct(row.file.realtime)}"
              f"{'':6}{row.hub.side_cpu / row.hub.seconds:>5.2f}c")
    rounds = sorted({r.round for r in rows})
    if len(rounds) > 1:
        print("medians over rounds:")
        for n in sorted({r.streams for r in rows}):
            mine = [r for r in rows if r.streams == n]
            print(f"{n:>3}  hub {statistics.median(r.hub.per_stream_minute(n) for r in mine):.3f}  "
                  f"bare-pipe {statistics.median(r.pipe.per_stream_minute(n) for r in mine):.3f}  "
                  f"ratio {statistics.median(r.ratio for r in mine):.2f}  "
                  f"bare-file {statistics.median(r.file.per_stream_minute(n) for r in mine):.3f}")
    print()
    print("hub = the hub's Python process (py) + its ffmpeg segmenters (ff); pushers not counted.")
    print("bare-pipe = N `ffmpeg -f mpegts -i pipe:0` segmenters fed by N -re pushers "
          "(segmenters counted only).")
    print("bare-file = N `ffmpeg -re -stream_loop -1 -i in.ts` segmenters (reading counted; "
          "information only).")
    print("bytes lost = bytes the pushers wrote (-progress total_size) - bytes the hub received "
          "+ bytes it dropped.")
    print("segments = cataloged hub segments checked: sizes match the disk, tiling within one "
          "frame, nothing uncataloged.")
    print(f"busy% = CPU of every process on the machine / ({cores} cores x window); "
          "realtime% = media seconds "
          "per wall second of the -re readers (their -progress; not measured for bare-file).")
    print("pushers = CPU of the hub's pushers (not counted), in cores.")
    notes = []
    for row in rows:
        tag = f"N={row.streams}" + (f" round {row.round}" if len(rounds) > 1 else "")
        for name, window in (("hub", row.hub), ("bare-pipe", row.pipe), ("bare-file", row.file)):
            late = window.realtime is not None and window.realtime < REALTIME_MIN
            waited = window.wait is not None and window.wait >= SATURATED_WAIT
            if window.busy >= SATURATED_BUSY or late or waited:
                notes.append(f"{tag} {name}: the machine was SATURATED (busy "
                             f"{window.busy * 100:.0f}%, tasks waiting for a CPU "
                             f"{pct(window.wait).strip()}% of the time, streams at "
                             f"{pct(window.realtime).strip()}% "
                             "of real time): this figure is not a steady-state cost")
        if row.hub.side_cpu / row.hub.seconds > 0.5 * cores:
            notes.append(f"{tag}: the pushers alone used {row.hub.side_cpu / row.hub.seconds:.2f} "
                         f"of {cores} cores")
        if row.hub.threads:
            notes.append(f"{tag} hub threads, CPU-s per minute: " + ", ".join(
                f"{name} {cpu:.2f}" for name, cpu in row.hub.threads[:6]))
        if row.check.problems:
            notes.append(f"{tag} hub checks FAILED ({len(row.check.problems)}):")
            notes.extend(f"    {p}" for p in row.check.problems[:20])
        else:
            notes.append(f"{tag} hub checks passed: {fmt_bytes(row.check.sent)} B sent, "
                         f"{fmt_bytes(row.check.received)} B received, "
                         f"{fmt_bytes(row.check.dropped)} B dropped; {row.check.segments} segments "
                         f"tile, {fmt_bytes(row.check.catalog_bytes)} B cataloged = "
                         f"{fmt_bytes(row.check.disk_bytes)} B on disk")
        if row.pipe.seconds and 0 in row.bare_segments:  # (not run with --no-bare)
            notes.append(f"{tag}: a bare variant wrote no segment: {row.bare_segments}")
    print()
    for note in notes:
        print(note)
    if out is not None:
        out.write_text(json.dumps([{
            "round": r.round, "streams": r.streams, "ratio": r.ratio,
            "hub": dataclasses.asdict(r.hub), "bare_pipe": dataclasses.asdict(r.pipe),
            "bare_file": dataclasses.asdict(r.file),
            "hub_s_per_stream_min": r.hub.per_stream_minute(r.streams),
            "bare_pipe_s_per_stream_min": r.pipe.per_stream_minute(r.streams),
            "bare_file_s_per_stream_min": r.file.per_stream_minute(r.streams),
            "bytes_sent": r.check.sent, "bytes_received": r.check.received,
            "bytes_dropped": r.check.dropped, "bytes_lost": r.check.lost,
            "segments_checked": r.check.segments, "catalog_bytes": r.check.catalog_bytes,
            "disk_bytes": r.check.disk_bytes, "problems": r.check.problems,
        } for r in rows], indent=2) + "\n")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--streams", default="4,16,64", help="comma-separated stream counts "
                   "(default 4,16,64)")
    p.add_argument("--seconds", type=float, default=30.0, help="measurement window (default 30)")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds between every stream "
                   "writing its first segment and the window (default 5)")
    p.add_argument("--rounds", type=int, default=1, help="repeat everything, print medians")
    p.add_argument("--input", type=Path, help="an MPEG-TS to push instead of encoding one")
    p.add_argument("--input-seconds", type=int, default=60, help="length of the encoded input")
    p.add_argument("--plain-hub", action="store_true", help="run exactly `python -m recorder` "
                   "(no byte counters: bytes lost is not measured)")
    p.add_argument("--pusher", choices=["ffmpeg", "mux"], default="ffmpeg",
                   help="ffmpeg: one stock `ffmpeg -re` per stream (default); mux: one "
                        "mux_pusher.py for all (light, for 256 streams; the input is not looped, "
                        "so give --input-seconds longer than the run)")
    p.add_argument("--protocol", type=int, choices=(1, 3), default=1,
                   help="with --pusher mux: 1 chunked POSTs (relayed by the hub), 3 version-3 "
                        "requests (the hub hands each socket to its ffmpeg)")
    p.add_argument("--no-bare", action="store_true",
                   help="measure only the hub (no bare-pipe and bare-file baselines)")
    p.add_argument("--hub-motion", action="store_true",
                   help="leave the hub's own motion detection on (off by default here: it is "
                        "not part of recording, and scripts/bench/hub_motion.py measures it)")
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (prints its path)")
    args = p.parse_args(argv)
    args.streams = [int(n) for n in args.streams.split(",") if n.strip()]
    return args


@contextlib.contextmanager
def workdir(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="hub-cpu-"))
    try:
        yield path
    finally:
        if keep:
            print(f"kept {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


def main(argv: list[str]) -> int:
    if argv[:1] == ["_hub"]:
        return hub_shim(argv[1:])
    args = parse_args(argv)
    from nvrlib.ffmpeg_bin import ffmpeg_exe

    ffmpeg = ffmpeg_exe()
    cores = os.cpu_count() or 1
    procs = Processes()
    rows: list[Row] = []
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    for signum in previous:  # turn kill/hang-up into an exception, so `finally` cleans up
        signal.signal(signum, lambda *_: sys.exit(1))
    try:
        with workdir(args.keep) as work, contextlib.ExitStack() as cleanup:
            cleanup.callback(procs.kill_all)  # before the work dir goes
            source = args.input
            if source is None:
                source = work / "input.ts"
                print(f"encoding {args.input_seconds} s of 720p25 H.264 into {source} ...",
                      file=sys.stderr)
                encode_input(ffmpeg, source, args.input_seconds)
            bench = Bench(args, work, source, ffmpeg, procs)
            print(f"input {source}: {bench.byte_rate * 8 / 1e6:.2f} Mbit/s; ffmpeg {ffmpeg}; "
                  f"{cores} cores; window {args.seconds:g} s after {args.warmup:g} s warm-up",
                  file=sys.stderr)
            for rnd in range(1, args.rounds + 1):
                for n in args.streams:
                    print(f"[round {rnd}] N={n}: bare-pipe ...", file=sys.stderr)
                    pipe, pipe_segs = NOT_RUN if args.no_bare else bench.bare(n, piped=True)
                    print(f"[round {rnd}] N={n}: hub ...", file=sys.stderr)
                    hub, check, _ = bench.hub(n)
                    print(f"[round {rnd}] N={n}: bare-file ...", file=sys.stderr)
                    file, file_segs = NOT_RUN if args.no_bare else bench.bare(n, piped=False)
                    rows.append(Row(rnd, n, hub, pipe, file, check, (pipe_segs, file_segs)))
                    print(f"[round {rnd}] N={n}: hub {hub.per_stream_minute(n):.3f}, bare-pipe "
                          f"{pipe.per_stream_minute(n):.3f}, bare-file {file.per_stream_minute(n):.3f}"
                          f" s/stream-min", file=sys.stderr)
    finally:
        procs.kill_all()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    print_table(rows, cores, args.json)
    failed = any(r.check.problems for r in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
