"""Real processes for tests: the hub, stock ffmpeg pushers, edges; always stopped."""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from nvrlib.ffmpeg_bin import ffmpeg_exe

ROOT = Path(__file__).resolve().parents[2]


# Ports for servers the tests start come from below Linux's ephemeral range (32768-60999),
# one slice per xdist worker: a port picked "free" from the ephemeral range could be taken by
# any outgoing connection, or by another worker, before the server binds it.
PORT_RANGE = (20000, 32000)
_next_port: dict[str, int] = {}


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now and no other test worker picks."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    workers = max(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")), index + 1)
    size = (PORT_RANGE[1] - PORT_RANGE[0]) // workers
    low = PORT_RANGE[0] + index * size
    start = _next_port.get(worker, low + (os.getpid() * 7919) % size)
    for step in range(size):
        port = low + (start - low + step) % size
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _next_port[worker] = low + (port - low + 1) % size  # never the same port twice in a row
        return port
    raise RuntimeError(f"no free port in {low}-{low + size - 1}")


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.05):
    """Poll ``predicate`` until it is truthy or the deadline passes (then fail with ``what``)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


class LoggedProcess:
    """A child process whose merged output is collected line by line in a thread."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None,
                 cwd: Path | None = None, stdin: int | None = subprocess.DEVNULL) -> None:
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=stdin, env=env, cwd=cwd, start_new_session=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.append(raw.decode("utf-8", "replace").rstrip())

    @property
    def output(self) -> str:
        """Everything the process printed so far."""
        return "\n".join(self.lines)

    def wait_line(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """Wait for an output line matching ``pattern``; fail if the process dies first."""
        regex = re.compile(pattern)

        def found() -> re.Match[str] | None:
            for line in list(self.lines):
                match = regex.search(line)
                if match:
                    return match
            if self.proc.poll() is not None:
                self._reader.join(2)
                for line in self.lines:
                    if regex.search(line):
                        return regex.search(line)
                raise AssertionError(f"{self.argv[:3]} exited ({self.proc.returncode}) before "
                                     f"printing {pattern!r}:\n{self.output[-3000:]}")
            return None

        return wait_for(found, timeout, f"{pattern!r} in output of {self.argv[:3]}")

    def terminate(self, timeout: float = 20.0) -> int:
        """SIGTERM, bounded wait, then SIGKILL of the whole process group."""
        self.ask_to_stop()
        return self.wait_stopped(timeout)

    def ask_to_stop(self) -> None:
        """Send SIGTERM if the process still runs."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)

    def wait_stopped(self, timeout: float) -> int:
        """Wait for the exit (SIGKILL after ``timeout``) and the last of its output."""
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_output()
        return self.proc.returncode

    def _close_output(self) -> None:
        self._reader.join(5)
        if self.proc.stdout is not None and not self._reader.is_alive():
            self.proc.stdout.close()

    def kill(self) -> None:
        """SIGKILL the process (not its group: its children must cope on their own)."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait(10)

    def kill_group(self) -> None:
        """SIGKILL the process group, for cleanup after a failure."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self._close_output()


def stop_all(processes: Iterable[LoggedProcess | None], timeout: float = 15.0) -> None:
    """SIGTERM every running process at once, then wait for each (SIGKILL of its group after).

    At once, because each takes a moment to end: one after another, sixteen pushers took 8 s.
    """
    started = [process for process in processes if process is not None]
    for process in started:
        process.ask_to_stop()
    for process in started:
        process.wait_stopped(timeout)
        process.kill_group()


ALERT_VARIABLES = ("SENDGRID_API_KEY", "SENDGRID_API_HOST", "ALERT_EMAIL_TO", "ALERT_EMAIL_FROM",
                   # secrets the environment overrides: a test's hub uses its own settings
                   "NVR_DB_URL", "NVR_INGEST_TOKEN", "NVR_SECRET_KEY")


def hub_environment(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without any real SendGrid settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in ALERT_VARIABLES}
    env.update(extra)
    return env


@functools.lru_cache(maxsize=1)
def migrated_catalog() -> Path:
    """A SQLite catalog at the newest schema, made once per test process (copied per hub)."""
    from nvrlib.catalog import db

    folder = Path(tempfile.mkdtemp(prefix="nvr-catalog-template-"))
    atexit.register(shutil.rmtree, folder, True)
    engine = db.make_engine(f"sqlite:///{folder / 'nvr.db'}")
    try:
        db.upgrade(engine)
    finally:
        engine.dispose()  # the last connection folds the WAL back into the file
    return folder / "nvr.db"


class Hub:
    """A real `python -m recorder` on 127.0.0.1 with its own storage and catalog."""

    def __init__(self, workdir: Path, config: str = "", segment_seconds: float = 2.0,
                 port: int | None = None, env: dict[str, str] | None = None,
                 argv_prefix: tuple[str, ...] = ()) -> None:
        self.workdir = workdir
        # run the hub through this, e.g. ("prlimit", "--nofile=1024:1024") (it must exec)
        self.argv_prefix: tuple[str, ...] | list[str] = argv_prefix
        self.env = env or {}
        self.port = port or free_port()
        self.storage = workdir / "recordings"
        self.db_path = workdir / "nvr.db"
        self.db_url = f"sqlite:///{self.db_path}"
        self.config_path = workdir / "hub.toml"
        self.config_path.write_text(config)
        self.segment_seconds = segment_seconds
        self.process: LoggedProcess | None = None
        self.runs: list[LoggedProcess] = []
        self.fresh_catalog = False  # True: the hub creates its SQLite catalog itself

    def start(self, timeout: float = 30.0) -> Hub:
        """Start the hub and wait until it listens."""
        if (not self.fresh_catalog and self.db_url == f"sqlite:///{self.db_path}"
                and not self.db_path.exists()):
            # a copy of a migrated catalog: the hub's start skips alembic (a second or more on
            # a loaded machine, for each of the suite's hundred-odd hubs); tests of the
            # migrations themselves set fresh_catalog
            shutil.copyfile(migrated_catalog(), self.db_path)
        argv = [*self.argv_prefix, sys.executable, "-m", "recorder",
                "--listen", f"127.0.0.1:{self.port}",
                "--storage", str(self.storage), "--db", self.db_url,
                "--segment-seconds", f"{self.segment_seconds:g}",
                "--config", str(self.config_path), "--log-level", "DEBUG"]
        self.process = LoggedProcess(argv, cwd=self.workdir, env=hub_environment(self.env))
        self.runs.append(self.process)
        self.process.wait_line(r"hub listening on", timeout)
        return self

    @property
    def output(self) -> str:
        """The log of every run of this hub so far."""
        return "\n".join(run.output for run in self.runs)

    def url(self, camera: str) -> str:
        """The ingest URL of a camera."""
        return f"http://127.0.0.1:{self.port}/ingest/v1/{camera}"

    def stop(self) -> int:
        """SIGTERM the hub and wait for it; return its exit code."""
        assert self.process is not None
        return self.process.terminate(timeout=30)

    def ffmpeg_children(self) -> list[int]:
        """Process ids of ffmpeg processes writing into this hub's storage."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                state = (entry / "stat").read_text().split(")")[-1].split()[0]
            except OSError:
                continue
            if state != "Z" and any(str(self.storage).encode() in a for a in argv) and \
                    any(b"ffmpeg" in a for a in argv[:4]):
                pids.append(int(entry.name))
        return pids


def ffmpeg_pusher(url: str, seconds: float | None = None, token: str | None = None,
                  size: str = "640x360", rate: int = 25, extra_headers: str = "",
                  output_args: tuple[str, ...] = (), exe: str | None = None) -> LoggedProcess:
    """Start a stock ffmpeg CLI pushing a live test pattern to ``url`` (no edge code).

    ``output_args`` go before the output, e.g. ("-output_ts_offset", "600") for a stream
    whose PTS start 600 s in; ``exe`` is another ffmpeg build (default: ffmpeg_exe()).
    """
    source = f"testsrc2=size={size}:rate={rate}"
    argv = [exe or ffmpeg_exe(), "-hide_banner", "-loglevel", "warning", "-re", "-f", "lavfi", "-i", source]
    if seconds is not None:
        argv += ["-t", f"{seconds:g}"]
    # ultrafast: half the CPU of veryfast; a dozen of these run at once on CI's 2 cores
    argv += ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", str(rate),
             "-pix_fmt", "yuv420p", *output_args, "-f", "mpegts"]
    headers = extra_headers
    if token:
        headers += f"Authorization: Bearer {token}\r\n"
    if headers:
        argv += ["-headers", headers]
    argv.append(url)
    return LoggedProcess(argv)


@contextlib.contextmanager
def running(*processes: LoggedProcess) -> Iterator[None]:
    """Make sure processes are stopped when the block ends, however it ends."""
    try:
        yield
    finally:
        for process in processes:
            if process.proc.poll() is None:
                process.terminate(timeout=10)
            process.kill_group()
