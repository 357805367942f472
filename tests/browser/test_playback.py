"""Playing recorded footage in the browser, across segment boundaries; its stream link."""

from __future__ import annotations

import urllib.request
from urllib.parse import urlencode, urljoin

from .support import Page
from .system import CAMERA, System

PLAY_TIMEOUT_MS = 30_000


def test_player_plays_continuously_past_a_segment_boundary(open_page, system: System) -> None:
    first = system.segments()[0]
    boundary = (first.end - first.start).total_seconds()  # where the second segment begins
    page: Page = open_page(user="admin")
    page.goto("/recordings/play?" + urlencode({"camera": CAMERA, "start": first.start_iso}))

    video = page.locator("video")
    # Muted playback is allowed without a user gesture; call play() in case autoplay did not.
    video.evaluate("v => { v.muted = true; return v.play().catch(() => null); }")
    try:
        page.wait_for_function(
            "b => document.querySelector('video').currentTime > b + 0.5",
            arg=boundary, timeout=PLAY_TIMEOUT_MS)
    except Exception as exc:
        state = video.evaluate(
            "v => ({t: v.currentTime, ready: v.readyState, paused: v.paused, "
            "error: v.error && v.error.message, "
            "box: (document.getElementById('nvr-player-error') || {}).textContent})")
        raise AssertionError(f"playback did not pass {boundary:.2f} s: {state}") from exc

    # Played, not jumped: one continuous played range from the start across the boundary.
    played = video.evaluate("v => Array.from({length: v.played.length},"
                            " (_, i) => [v.played.start(i), v.played.end(i)])")
    assert any(start <= boundary - 0.5 and end > boundary + 0.5 for start, end in played), played


def test_copy_stream_link_gives_a_url_that_plays_without_a_login(open_page,
                                                                 system: System) -> None:
    first = system.segments()[0]
    page: Page = open_page(user="viewer")
    page.goto("/recordings/play?" + urlencode({"camera": CAMERA, "start": first.start_iso}))
    page.get_by_role("button", name="Copy stream link").click()
    field = page.get_by_label("Stream link")
    field.wait_for(state="visible")
    assert "It plays until" in page.locator("#nvr-stream-link-status").text_content()
    link = field.input_value()
    assert link.startswith(f"{system.base_url}/api/v1/playback/{CAMERA}.m3u8?") and "&st=" in link
    assert "st=" not in page.url  # the secret stays out of the page's address
    with urllib.request.urlopen(link, timeout=30) as answer:  # no cookie, no header
        playlist = answer.read().decode()
    segment = next(line for line in playlist.splitlines() if line.startswith("../recordings/"))
    assert segment.endswith(link[link.index("&st="):].replace("&", "?", 1))
    with urllib.request.urlopen(urljoin(link, segment), timeout=30) as answer:
        assert answer.headers["Content-Type"] == "video/mp2t" and answer.read(188)[0] == 0x47
