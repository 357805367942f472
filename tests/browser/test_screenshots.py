"""The main pages at phone and laptop widths: screenshots, no sideways scrolling, CSP clean."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import pytest

from .support import Console, Page, expect, horizontal_overflow
from .system import CAMERA, System

# (name, path or None for the player, the element that shows the page is drawn)
PAGES = {
    "dashboard": ("/", "h1"),
    "recordings": (f"/recordings/?camera={CAMERA}", "table"),
    "player": (None, "video"),
    "admin": ("/admin/", "[data-admin-table]"),
}
# (viewport preset, colour scheme)
LOOKS = {"375px": ("phone", "light"), "1280px": ("desktop", "light"),
         "375px-dark": ("phone", "dark")}


def player_path(system: System) -> str:
    """The player of the test camera from its first recorded segment."""
    start = system.segments()[0].start_iso
    return "/recordings/play?" + urlencode({"camera": CAMERA, "start": start})


def wait_until_drawn(page: Page, name: str, selector: str) -> None:
    """Wait for the page's main element (and, on the player, for a picture)."""
    expect(page.locator(selector).first).to_be_visible()
    if name == "player":
        # A function, not a bare expression: Playwright evals a bare one, which the CSP forbids.
        page.wait_for_function("() => document.querySelector('video').readyState >= 2",
                               timeout=20_000)
    else:
        # Lazy thumbnails below the fold would be blank in a full-page screenshot.
        page.evaluate("document.querySelectorAll('img[loading=lazy]')"
                      ".forEach(img => { img.loading = 'eager'; })")
        page.wait_for_function("() => Array.from(document.images).every(img => img.complete)")


@pytest.mark.parametrize("look", LOOKS)
@pytest.mark.parametrize("name", PAGES)
def test_page_fits_the_width_without_csp_violations(open_page, system: System,
                                                    screenshot_dir: Path, name: str,
                                                    look: str) -> None:
    viewport, scheme = LOOKS[look]
    page: Page = open_page(viewport=viewport, user="admin", color_scheme=scheme)
    console = Console(page)
    path, selector = PAGES[name]
    page.goto(path or player_path(system))
    wait_until_drawn(page, name, selector)
    assert page.evaluate("document.documentElement.dataset.bsTheme") == scheme

    page.screenshot(path=screenshot_dir / f"{name}-{look}.png", full_page=True)
    assert horizontal_overflow(page) <= 0, f"{name} scrolls sideways at {look}"
    assert console.csp_violations() == []
