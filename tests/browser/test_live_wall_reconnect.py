"""A wall display comes back by itself: the hub restarts under a playing wall, and every tile
moves again without anyone reloading the page (issue 12, point 4).

Two real edges (they reconnect to the hub by themselves) record two cameras; Chromium shows the
live grid, whose one wall connection ends when the hub goes away; the page reconnects on its
own (1 s, doubling to 10 s) and each tile starts over from the new tap's init segment.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.procs import Hub, LoggedProcess, stop_all, wait_for

from .support import login
from .system import _http_status, create_user, start_web

CAMERAS = ("wall-a", "wall-b")
USER = ("wallviewer", "wall-viewer-pass")
PLAYING = ("(names) => names.every(name => { const v = document.querySelector("
           "`[data-live-camera=\"${name}\"] video[data-live-video]`);"
           " return v && v.readyState >= 2 && v.currentTime > 0; })")
MOVED = ("([names, before]) => names.every((name, i) => { const v = document.querySelector("
         "`[data-live-camera=\"${name}\"] video[data-live-video]`);"
         " return v && v.readyState >= 2 && v.currentTime > 0 && v.currentTime !== before[i]; })")


def start_edge(hub: Hub, camera: str) -> LoggedProcess:
    """A real edge with a small synthetic camera; it reconnects whenever the hub comes back."""
    argv = [sys.executable, "-m", "edge", "--hub", "127.0.0.1", "--port", str(hub.port),
            "--camera", "test", "--name", camera, "--location", "wall", "--fps", "10",
            "--size", "320x180", "--bitrate", "200k", "--no-spool"]
    return LoggedProcess(argv, cwd=hub.workdir)


@pytest.fixture(scope="module")
def wall_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Hub, str]]:
    """A hub, two edges and a web app; everything stopped at the end."""
    workdir: Path = tmp_path_factory.mktemp("wall-reconnect")
    hub = Hub(workdir)
    users_db = f"sqlite:///{workdir / 'users.db'}"
    edges: list[LoggedProcess] = []
    web = None
    try:
        hub.start()
        edges += [start_edge(hub, camera) for camera in CAMERAS]
        create_user(hub, users_db, *USER, admin=False)
        web, base_url = start_web(hub, users_db)
        wait_for(lambda: _http_status(f"{base_url}/auth/login") == 200, 30, "the web app")
        yield hub, base_url
    finally:
        stop_all((web, *edges, *hub.runs))


def currents(page: Any) -> list[float]:
    """Each tile's playing position, in the order of CAMERAS."""
    return [page.locator(f'[data-live-camera="{name}"] video[data-live-video]')
            .evaluate("(v) => v.currentTime") for name in CAMERAS]


def test_the_wall_plays_again_by_itself_after_the_hub_restarts(
        browser: Any, wall_system: tuple[Hub, str]) -> None:
    hub, base_url = wall_system
    context = browser.new_context(base_url=base_url, viewport={"width": 1366, "height": 768})
    try:
        page = context.new_page()
        login(page, *USER)
        wait_for(lambda: {c["name"] for c in context.request.get("/api/v1/cameras").json()
                          if c["online"]} >= set(CAMERAS), 45, "both cameras online",
                 interval=0.3)
        page.goto("/live/")
        page.evaluate("() => { window.nvrSamePage = true; }")  # gone if the page reloads
        page.wait_for_function(PLAYING, arg=list(CAMERAS), timeout=30_000, polling=100)
        assert hub.stop() == 0
        hub.start()  # same port, same storage: the edges find it again by themselves
        before = currents(page)
        page.wait_for_function(MOVED, arg=[list(CAMERAS), before], timeout=60_000, polling=200)
        # and they keep moving: both tiles are live, on the page that was never reloaded
        again = currents(page)
        page.wait_for_function(MOVED, arg=[list(CAMERAS), again], timeout=15_000, polling=200)
        assert page.evaluate("() => window.nvrSamePage === true")
    finally:
        context.close()
