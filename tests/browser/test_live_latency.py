"""Live in under a second: a camera whose frames carry their own creation time, watched live.

A clock pusher (tests/support/clock_frames.py) writes the wall-clock milliseconds into every
frame as black and white blocks. Chromium opens the camera's live page from cold (no live view
running) and must show a picture within 2 s; the page's canvas then reads the blocks back 20
times: the median delay must be at most 1 s. Without a browser, two viewers read the stream
(tests/support/live_viewer.py) and one stops reading for 10 s: it is back to live within 2 s of
resuming, and the other's delay never moves. The second clock camera also sends sound (AAC).
The wall plays sixteen cameras (the two clocks and fourteen small test patterns) over one
connection, the clocks each under a second behind, and has "fit to screen" and
click-to-enlarge.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.clock_frames import CLOCK_JS, delay_ms
from tests.support.live_viewer import LiveViewer
from tests.support.media import segments
from tests.support.procs import Hub, LoggedProcess, wait_for

from .support import Console, login
from .system import running_clock_system

CAMERA = "clock-test"
SECOND_CAMERA = "clock-two"
# fourteen more, small moving test patterns: the wall of sixteen (each is a stock ffmpeg, cheap)
PATTERNS = tuple(f"wall-{i:02d}" for i in range(14))
WALL = (CAMERA, SECOND_CAMERA, *PATTERNS)
USER = ("watcher", "watcher-browser-pass")
FIRST_PICTURE_S = 2.0
MEDIAN_DELAY_MS = 1000
SAMPLES = 20
STALL_S = 10.0
BACK_TO_LIVE_S = 2.0
LIVE_MS = 1000  # a frame this fresh is live
PICTURE_SHOWN = "(video) => video.readyState >= 2 && video.currentTime > 0 && (" + CLOCK_JS + ")(video) !== null"


@dataclasses.dataclass
class ClockSystem:
    """A hub recording the clock camera and the web app in front of it."""

    hub: Hub
    web: LoggedProcess
    base_url: str


@pytest.fixture(scope="module")
def clock_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClockSystem]:
    """Hub, clock pusher and web app of their own (the shared system's camera list stays)."""
    # the first clock pushes as our edge does (protocol version 3: the hub's live view peeks
    # at a socket its ffmpeg reads), the second as a stock ffmpeg (version 1, relayed)
    with running_clock_system(tmp_path_factory.mktemp("live-latency"), (CAMERA, SECOND_CAMERA),
                              USER, sound=(SECOND_CAMERA,), patterns=PATTERNS,
                              direct=(CAMERA,)) as running:
        yield ClockSystem(*running)


@pytest.fixture(scope="module")
def watcher(browser: Any, clock_system: ClockSystem) -> Iterator[Any]:
    """A logged-in browser context, once the camera records and shows as online."""
    context = browser.new_context(base_url=clock_system.base_url,
                                  viewport={"width": 1280, "height": 800})
    try:
        login(context.new_page(), *USER)

        def online() -> bool:
            response = context.request.get("/api/v1/cameras")
            online = {c["name"] for c in response.json() if c["online"]} if response.ok else set()
            return set(WALL) <= online

        wait_for(online, 45, "the sixteen cameras online", interval=0.3)
        yield context
    finally:
        context.close()


@pytest.fixture
def page(watcher: Any) -> Iterator[Any]:
    """A new tab of the logged-in context, closed after the test (its streams end with it)."""
    tab = watcher.new_page()
    yield tab
    tab.close()


def cookie_header(context: Any) -> str:
    """The browser context's cookies as a Cookie header (the session, for a Python viewer)."""
    return "; ".join(f"{c['name']}={c['value']}" for c in context.cookies())


def make_cold(system: ClockSystem, camera: str) -> None:
    """Wait until the hub runs no live view of the camera (another test may have watched it)."""
    live_dir = system.hub.storage / ".live" / camera

    def cold() -> bool:
        # as if the last viewer left 30 s ago; a feed still serving one marks it again
        past = time.time() - 30
        if (live_dir / ".wanted").exists():
            os.utime(live_dir / ".wanted", (past, past))
        return not (live_dir / "mse.head").exists()

    wait_for(cold, 40, f"the live view of {camera} to stop", interval=0.5)


def read_delays(video: Any, count: int) -> list[int]:
    """Read the clock ``count`` times from a playing <video>, 150 ms apart: delays in ms."""
    delays: list[int] = []
    while len(delays) < count:
        reading = video.evaluate(CLOCK_JS)
        if reading is not None:
            delays.append(delay_ms(reading["shown"], reading["now"]))
        video.page.wait_for_timeout(150)
    return delays


def test_first_picture_within_2_s_from_cold_and_median_delay_under_1_s(
        page: Any, clock_system: ClockSystem) -> None:
    # A camera that records: its first segment is out. (In a version-3 camera's first seconds
    # its ffmpeg still probes the stream and has written nothing its live view could start
    # from: 2.0-2.4 s measured, against 0.3 s later; docs/design/live.md, "Caveats".)
    wait_for(lambda: segments(clock_system.hub.db_path, CAMERA), 30, "a first segment")
    make_cold(clock_system, CAMERA)
    console = Console(page)
    opened = time.monotonic()
    page.goto(f"/live/{CAMERA}")
    video = page.locator("video[data-live-video]")
    page.wait_for_function(PICTURE_SHOWN, arg=video.element_handle(), timeout=15_000,
                           polling=20)
    first_picture = time.monotonic() - opened
    delays = read_delays(video, SAMPLES)
    median = statistics.median(delays)
    print(f"\nfirst picture {first_picture:.2f} s after opening; delay median {median:.0f} ms, "
          f"samples {sorted(delays)}")
    assert first_picture <= FIRST_PICTURE_S, f"first picture after {first_picture:.2f} s"
    assert median <= MEDIAN_DELAY_MS, f"median delay {median} ms: {sorted(delays)}"
    overlay = page.locator("[data-live-overlay]")
    assert overlay.is_hidden(), f"an overlay over the moving picture: {overlay.inner_text()}"
    errors = [m for m in console.messages if m.startswith("error")]
    assert not errors, f"the live view logged errors while it started: {errors}"
    assert page.locator('[data-field="sound"]').inner_text() == "none from this camera"


def test_a_camera_with_sound_plays_it_muted_until_asked_and_stays_under_a_second(
        page: Any, clock_system: ClockSystem) -> None:
    page.goto(f"/live/{SECOND_CAMERA}")
    video = page.locator("video[data-live-video]")
    page.wait_for_function(PICTURE_SHOWN, arg=video.element_handle(), timeout=15_000)
    # the browser decodes the camera's sound (the stream carries AAC next to the picture)
    page.wait_for_function("(video) => video.webkitAudioDecodedByteCount > 0",
                           arg=video.element_handle(), timeout=10_000)
    page.wait_for_function("() => document.querySelector('[data-field=sound]').textContent"
                           " === 'muted (the speaker button turns it on)'", timeout=10_000)
    assert video.evaluate("(video) => video.muted")
    delays = read_delays(video, SAMPLES)
    print(f"\nwith sound: delay median {statistics.median(delays):.0f} ms, {sorted(delays)}")
    assert statistics.median(delays) <= MEDIAN_DELAY_MS, sorted(delays)
    video.evaluate("(video) => { video.muted = false; }")
    page.wait_for_function("() => document.querySelector('[data-field=sound]').textContent"
                           " === 'on'")


def test_a_stalled_viewer_is_back_to_live_within_2_s_and_others_never_wait(
        watcher: Any, clock_system: ClockSystem) -> None:
    url = f"{clock_system.base_url}/live/{CAMERA}/live.mp4"
    cookie = cookie_header(watcher)
    # a small receive buffer, as a busy phone's: loopback's would hold the whole stall
    stalled = LiveViewer(url, cookie, receive_buffer=64 * 1024)
    steady = LiveViewer(url, cookie)
    try:
        wait_for(lambda: len(stalled.frames) > 30 and len(steady.frames) > 30, 20,
                 "both viewers playing", interval=0.1)
        before = statistics.median(steady.delays_since(time.time() - 1.5))
        stalled.pause()
        stall_started = time.time()
        time.sleep(STALL_S)  # the stall itself is what is tested: nothing to wait for instead
        during = steady.delays_since(stall_started)
        stalled.resume()
        resumed = time.time()

        def live_again() -> float | None:
            fresh = [f.arrived for f in stalled.frames
                     if f.arrived >= resumed and 0 <= f.delay_ms <= LIVE_MS]
            return max(fresh[0] - resumed, 0.001) if fresh else None

        back = wait_for(live_again, 10, "the stalled viewer back to live", interval=0.05)
        print(f"\nsteady viewer: {before:.0f} ms before, {statistics.median(during):.0f} ms "
              f"median / {max(during)} ms worst during the stall; stalled viewer live again "
              f"{back:.2f} s after resuming")
        assert stalled.error is None and steady.error is None, (stalled.error, steady.error)
        assert back <= BACK_TO_LIVE_S
        assert len(during) >= STALL_S * 10, "the steady viewer kept getting frames"
        assert statistics.median(during) <= before + 150, "the others' delay did not move"
        assert sorted(during)[len(during) * 95 // 100] <= MEDIAN_DELAY_MS
    finally:
        stalled.stop()
        steady.stop()


def test_the_wall_plays_sixteen_cameras_over_one_connection_each_under_a_second(
        page: Any, clock_system: ClockSystem) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto("/live/")
    assert page.locator("[data-live-camera]").count() == len(WALL) == 16
    videos = page.locator("video[data-live-video]")
    # every tile shows a picture, then every picture moves
    page.wait_for_function("(n) => { const v = document.querySelectorAll('video[data-live-video]');"
                           " return v.length === n && Array.from(v).every(x => x.readyState >= 2"
                           " && x.currentTime > 0); }", arg=len(WALL), timeout=60_000, polling=200)
    shown = videos.evaluate_all("(all) => all.map(v => v.currentTime)")
    page.wait_for_function("(before) => Array.from(document.querySelectorAll("
                           "'video[data-live-video]')).every((v, i) => v.currentTime > before[i]"
                           " + 0.5)", arg=shown, timeout=30_000, polling=200)
    medians = []
    for name in (CAMERA, SECOND_CAMERA):
        video = page.locator(f'[data-live-camera="{name}"] video[data-live-video]')
        medians.append(statistics.median(read_delays(video, SAMPLES // 2)))
    streams = [url for url in requested if "/live/" in url and "/api/" not in url
               and not url.endswith("/live/") and "/static/" not in url]
    print(f"\nwall of {len(WALL)}: clock tiles' delays (median ms) {medians}; "
          f"stream requests: {streams}")
    assert all(m <= MEDIAN_DELAY_MS for m in medians), medians
    assert len(streams) == 1 and "/live/_wall?camera=" in streams[0], streams
    assert streams[0].count("camera=") == 16
    first = page.locator(f'[data-live-camera="{CAMERA}"]')
    first.locator("video[data-live-video]").click()  # click to enlarge
    assert "live-enlarged" in (first.locator("xpath=..").get_attribute("class") or "")
    grid = page.locator("[data-live-page]")
    page.get_by_role("button", name="Fit to screen").click()
    assert "live-fit" in (grid.get_attribute("class") or "")
    page.keyboard.press("Escape")
    page.wait_for_function("() => !document.querySelector('[data-live-page]')"
                           ".classList.contains('live-fit')")
