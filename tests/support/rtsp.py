"""A real RTSP camera for tests (GstRtspServer in a child process); stdlib only.

The server itself is ``rtsp_server.py`` beside this file, run with the SYSTEM python
because PyGObject and GStreamer are Debian packages (``scripts/install-test-deps.sh``)::

    from tests.support.requirements import require
    from tests.support.rtsp import rtsp_server, unavailable_reason

    require(unavailable_reason(), module_level=True)   # a missing GStreamer fails, never skips

    def test_pull():
        with rtsp_server(user="admin", password="secret") as cam:
            pull(cam.url)              # rtsp://admin:secret@127.0.0.1:PORT/cam
            cam.stop()                 # camera goes away (SIGTERM; cam.kill() = SIGKILL)
            cam.start()                # back again on the same port and path
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import signal
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

SERVER_SCRIPT = Path(__file__).resolve().with_name("rtsp_server.py")
SYSTEM_PYTHON = os.environ.get("NVR_SYSTEM_PYTHON", "/usr/bin/python3")
READY_PREFIX = "READY "
INSTALL_HINT = "run scripts/install-test-deps.sh"


def _child_env() -> dict[str, str]:
    """The environment for the system python: nothing of the venv's python setup."""
    env = dict(os.environ)
    for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"):
        env.pop(name, None)
    return env


@functools.lru_cache(maxsize=1)
def unavailable_reason() -> str | None:
    """None when the RTSP test server can run here, else a reason to skip with."""
    if not os.path.exists(SYSTEM_PYTHON):
        return f"{SYSTEM_PYTHON} not found ({INSTALL_HINT})"
    try:
        done = subprocess.run([SYSTEM_PYTHON, str(SERVER_SCRIPT), "--check"],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=30, env=_child_env(), check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run {SYSTEM_PYTHON} {SERVER_SCRIPT.name} --check: {exc}"
    if done.returncode == 0 and done.stdout.strip() == "OK":
        return None
    detail = (done.stdout + done.stderr).strip().splitlines()
    return f"RTSP test server unavailable: {detail[-1] if detail else done.returncode} " \
           f"({INSTALL_HINT})"


def rtsp_server_available() -> bool:
    """Whether the system python can import gi + GstRtspServer and has the elements."""
    return unavailable_reason() is None


class RtspServerError(RuntimeError):
    """The RTSP test server did not come up (its output is in the message)."""


class RtspServer:
    """One RTSP test camera; ``start()`` again after ``stop()`` reuses port and path."""

    def __init__(self, path: str = "cam", user: str | None = None,
                 password: str | None = None, timeout: float = 20.0, port: int = 0,
                 auth: str = "digest", extra_args: list[str] | None = None) -> None:
        if (user is None) != (password is None):
            raise ValueError("user and password go together")
        self.path = path.strip("/")
        self.user = user
        self.password = password
        self.timeout = timeout
        self.port = port  # 0 until the first start has bound one
        self.host = "127.0.0.1"
        self.auth = auth
        self.extra_args = list(extra_args or [])
        self.lines: list[str] = []  # every line the server printed, over all runs
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._run_start = 0  # index in self.lines where the current run's output starts

    # -- URLs -------------------------------------------------------------------------
    @property
    def plain_url(self) -> str:
        """``rtsp://127.0.0.1:PORT/PATH`` without credentials."""
        return f"rtsp://{self.host}:{self.port}/{self.path}"

    @property
    def url(self) -> str:
        """The URL to pull: with ``user:password@`` (percent-encoded) when auth is on."""
        if self.user is None:
            return self.plain_url
        creds = f"{urllib.parse.quote(self.user, safe='')}:" \
                f"{urllib.parse.quote(self.password or '', safe='')}@"
        return f"rtsp://{creds}{self.host}:{self.port}/{self.path}"

    def url_with(self, user: str, password: str) -> str:
        """The URL with other credentials (e.g. wrong ones)."""
        creds = f"{urllib.parse.quote(user, safe='')}:{urllib.parse.quote(password, safe='')}@"
        return f"rtsp://{creds}{self.host}:{self.port}/{self.path}"

    @property
    def output(self) -> str:
        """Everything the server printed so far (stdout and stderr merged)."""
        return "\n".join(self.lines)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # -- life cycle -------------------------------------------------------------------
    def start(self, timeout: float | None = None) -> RtspServer:
        """Start the server (on the same port as before, if it ran already); wait READY.

        Binding the old port again can fail for a moment right after a stop (another
        process grabbed it, or the old socket lingers); that is retried until the
        deadline.
        """
        if self.running:
            raise RuntimeError("RTSP test server already running")
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            lines: queue.Queue[str | None] = queue.Queue()
            self._spawn(lines)
            try:
                ready = self._wait_ready(lines, deadline)
            except BaseException:
                self._terminate(timeout=5)
                raise
            if ready is not None:
                self.port = int(urllib.parse.urlsplit(ready).port or 0)
                return self
            # Exited before READY: retry a port clash while time is left, else fail.
            self._terminate(timeout=5)
            clash = any("cannot listen" in line for line in self.lines[self._run_start:])
            if not (clash and self.port and time.monotonic() < deadline):
                raise RtspServerError(f"RTSP test server exited before READY "
                                      f"(exit {self._proc.returncode if self._proc else '?'}):"
                                      f"\n{self.output[-3000:]}")
            # Bounded back-off between bind attempts (the deadline above still holds).
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    def _spawn(self, lines: queue.Queue[str | None]) -> None:
        argv = [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--host", self.host,
                "--port", str(self.port), "--path", self.path, "--watch-stdin"]
        if self.user is not None:
            argv += ["--user", self.user, "--password", self.password or "",
                     "--auth", self.auth]
        argv += self.extra_args
        self._run_start = len(self.lines)
        # stdin is a pipe we never write: if this test process dies, the server sees EOF
        # and exits on its own instead of lingering on the port.
        self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, env=_child_env(),
                                      start_new_session=True)
        self._reader = threading.Thread(target=self._read, args=(self._proc, lines),
                                        name=f"rtsp-server-{self._proc.pid}", daemon=True)
        self._reader.start()

    def _read(self, proc: subprocess.Popen[bytes], lines: queue.Queue[str | None]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            self.lines.append(line)
            lines.put(line)
        lines.put(None)  # EOF: the server exited (or closed stdout)

    def _wait_ready(self, lines: queue.Queue[str | None], deadline: float) -> str | None:
        """The URL from the READY line; None if the server exited first."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RtspServerError(f"RTSP test server not READY within {self.timeout:g} s:"
                                      f"\n{self.output[-3000:]}")
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                return None
            if line.startswith(READY_PREFIX):
                return line[len(READY_PREFIX):].strip()

    def stop(self, timeout: float = 10.0) -> int | None:
        """Stop the camera (SIGTERM, bounded wait, then SIGKILL); return its exit code."""
        return self._terminate(timeout)

    def kill(self) -> int | None:
        """Stop the camera abruptly (SIGKILL): no RTSP teardown, sockets just drop."""
        return self._terminate(timeout=0)

    def _terminate(self, timeout: float) -> int | None:
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None and timeout > 0:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: nothing else
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(10)
        if self._reader is not None:
            self._reader.join(5)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        return proc.returncode

    def __enter__(self) -> RtspServer:
        return self.start() if not self.running else self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<RtspServer {self.plain_url} {state}>"


@contextlib.contextmanager
def rtsp_server(path: str = "cam", user: str | None = None, password: str | None = None,
                timeout: float = 20, *, port: int = 0, auth: str = "digest",
                extra_args: list[str] | None = None) -> Iterator[RtspServer]:
    """Run an RTSP test camera on 127.0.0.1; yield the RtspServer (``.url``, ``.stop()``,
    ``.start()``, ``.kill()``); always stop it when the block ends.

    ``auth`` is "digest" or "basic" (used only with user/password); ``extra_args`` go to
    rtsp_server.py as they are (e.g. ``["--fps", "15", "--gop", "30"]``).
    """
    server = RtspServer(path=path, user=user, password=password, timeout=timeout,
                        port=port, auth=auth, extra_args=extra_args)
    try:
        server.start()
        yield server
    finally:
        server.stop()
