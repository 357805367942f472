"""The system the browser tests drive: a real hub, a real edge with a test camera, the web app."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tests.support.procs import Hub, LoggedProcess, ffmpeg_pusher, free_port, stop_all, wait_for

CAMERA = "yard-test"
LOCATION = "yard"
SEGMENT_SECONDS = 2.0
MIN_SEGMENTS = 3
ADMIN = ("admin", "admin-browser-pass")
VIEWER = ("viewer", "viewer-browser-pass")


@dataclasses.dataclass(frozen=True)
class Segment:
    """A catalog row of the test camera, as the browser tests need it."""

    id: int
    start: dt.datetime
    end: dt.datetime

    @property
    def start_iso(self) -> str:
        """The start as ISO-8601 UTC with a Z, as the web app's URLs carry it."""
        return self.start.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclasses.dataclass
class System:
    """What a test needs to reach the running hub, edge and web app."""

    hub: Hub
    edge: LoggedProcess
    web: LoggedProcess
    base_url: str

    def segments(self, camera: str = CAMERA) -> list[Segment]:
        """The camera's finished live segments in the catalog, oldest first (read with sqlite3).

        Back-filled rows are left out: tests of the timeline seed some into this shared catalog.
        """
        with contextlib.closing(sqlite3.connect(self.hub.db_path, timeout=10)) as conn:
            rows = conn.execute(
                "SELECT s.id, s.start_time, s.end_time FROM segments s JOIN cameras c"
                " ON c.id = s.camera_id WHERE c.name = ? AND s.status = 'ok'"
                " AND s.backfilled = 0"
                " ORDER BY s.start_time", (camera,)).fetchall()
        return [Segment(r[0], _utc(r[1]), _utc(r[2])) for r in rows]

    def logs(self) -> str:
        """The tail of every process's output, for a failure message."""
        parts = [("hub", self.hub.output), ("edge", self.edge.output), ("web app", self.web.output)]
        return "\n".join(f"--- {name} ---\n{text[-4000:]}" for name, text in parts)


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc)


def _http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def _common_flags(hub: Hub, users_db: str) -> list[str]:
    return ["--db", hub.db_url, "--storage", str(hub.storage), "--users-db", users_db]


def create_user(hub: Hub, users_db: str, name: str, password: str, admin: bool) -> None:
    """Create a web app user with the real CLI, the password passed in $NVR_PASSWORD."""
    argv = [sys.executable, "-m", "webapp", "create-user", name, *_common_flags(hub, users_db)]
    if admin:
        argv.append("--admin")
    done = subprocess.run(argv, cwd=hub.workdir, env={**os.environ, "NVR_PASSWORD": password},
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"create-user {name} failed:\n{done.stdout}{done.stderr}"


def start_edge(hub: Hub) -> LoggedProcess:
    """A real edge pushing one synthetic `test` camera to the hub."""
    argv = [sys.executable, "-m", "edge", "--hub", "127.0.0.1", "--port", str(hub.port),
            "--camera", "test", "--name", CAMERA, "--location", LOCATION,
            "--fps", "15", "--size", "640x360", "--bitrate", "800k",
            "--spool-dir", str(hub.workdir / "spool")]
    return LoggedProcess(argv, cwd=hub.workdir)


def start_web(hub: Hub, users_db: str, threads: int | None = None) -> tuple[LoggedProcess, str]:
    """The real web app under waitress, on a free port of 127.0.0.1."""
    port = free_port()
    argv = [sys.executable, "-m", "webapp", "serve", "--host", "127.0.0.1", "--port", str(port),
            *_common_flags(hub, users_db)]
    if threads is not None:
        argv += ["--threads", str(threads)]
    return LoggedProcess(argv, cwd=hub.workdir), f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def running_system(workdir: Path) -> Iterator[System]:
    """Start hub, edge and web app; wait until the web app answers and footage exists."""
    hub = Hub(workdir, segment_seconds=SEGMENT_SECONDS)
    users_db = f"sqlite:///{workdir / 'users.db'}"
    edge = web = None
    try:
        hub.start()
        edge = start_edge(hub)  # first, so footage piles up while the web app starts
        create_user(hub, users_db, *ADMIN, admin=True)
        create_user(hub, users_db, *VIEWER, admin=False)
        web, base_url = start_web(hub, users_db)
        system = System(hub, edge, web, base_url)
        _wait_ready(system)
        yield system
    finally:
        stop_all((web, edge, *hub.runs))


@contextlib.contextmanager
def running_clock_system(workdir: Path, cameras: tuple[str, ...], user: tuple[str, str],
                         threads: int | None = None, sound: tuple[str, ...] = (),
                         patterns: tuple[str, ...] = (), direct: tuple[str, ...] = (),
                         ) -> Iterator[tuple[Hub, LoggedProcess, str]]:
    """A hub recording clock cameras (tests/support/clock_frames.py) and a web app with a viewer.

    The cameras named in ``sound`` also send a tone (AAC), those in ``direct`` push with
    protocol version 3 as our edge does (the others as a stock ffmpeg); those in ``patterns``
    are small moving test patterns from a stock ffmpeg (cheap: a wall of cameras on CI's two
    cores).
    Yields the hub, the web app's process and its base URL once the login page answers.
    """
    from tests.support.clock_frames import ClockPusher

    count = len(cameras) + len(patterns)
    # every pusher comes from 127.0.0.1: lift the per-address guards against invented names
    hub = Hub(workdir, config=f"new_cameras_per_source = {count + 1}\n"
                              f"max_connections_per_source = {count + 8}\n")
    users_db = f"sqlite:///{workdir / 'users.db'}"
    pushers: list[ClockPusher] = []
    plain: list[LoggedProcess] = []
    web = None
    try:
        hub.start()
        pushers += [ClockPusher(hub.url(camera), sound=camera in sound, direct=camera in direct)
                    for camera in cameras]
        plain += [ffmpeg_pusher(hub.url(camera), size="160x96", rate=10) for camera in patterns]
        create_user(hub, users_db, *user, admin=False)
        web, base_url = start_web(hub, users_db, threads)
        wait_for(lambda: _http_status(f"{base_url}/auth/login") == 200, 30, "the web app")
        yield hub, web, base_url
    finally:
        for pusher in pushers:
            pusher.stop()
        stop_all((web, *plain, *hub.runs))


def _wait_ready(system: System) -> None:
    """Wait for the login page to answer 200 and for the camera's first segments."""
    def web_up() -> bool:
        if system.web.proc.poll() is not None:
            raise AssertionError(f"the web app exited ({system.web.proc.returncode}):\n"
                                 f"{system.web.output[-3000:]}")
        return _http_status(f"{system.base_url}/auth/login") == 200

    try:
        wait_for(web_up, 30, "the web app's login page to answer 200", interval=0.1)
        wait_for(lambda: len(system.segments()) >= MIN_SEGMENTS, 45,
                 f"{MIN_SEGMENTS} segments of {CAMERA} in the catalog", interval=0.2)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{system.logs()}") from None
