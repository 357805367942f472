"""The admin page keeps telling the truth while a live view opens and closes.

Users saw every camera turn "hub silent" on the admin page when a live view closed: the hub
stopped the live view's ffmpeg slowly and wrote no status meanwhile. The admin page stays
open here, refreshing itself every 5 s, while another tab watches the camera live and leaves.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.procs import wait_for

from .support import Page, expect
from .system import CAMERA, System

LAPTOP = {"width": 1366, "height": 768}
WATCH_SECONDS = 12.0  # two refreshes of the admin page (every 5 s) and some
PLAYING = "() => { const v = document.querySelector('video[data-live-video]');" \
          " return v !== null && v.readyState >= 2 && v.currentTime > 0; }"


def admin_at_laptop_size(browser: Any, system: System, signed_in: Callable[[str], Path]) -> Any:
    """The admin's browser context at 1366x768 (a common laptop), closed by the caller."""
    return browser.new_context(base_url=system.base_url, viewport=LAPTOP,
                               storage_state=signed_in("admin"))


def state_badge(page: Page) -> str:
    """The text of the camera's state badge in the admin table's wide layout."""
    cell = page.locator(f'[data-admin-camera="{CAMERA}"] td:nth-child(2) [data-field="state"]')
    return cell.inner_text().strip()


def test_admin_page_stays_right_while_a_live_view_opens_and_closes(
        browser: Any, system: System, signed_in: Callable[[str], Path],
        screenshot_dir: Path) -> None:
    context = admin_at_laptop_size(browser, system, signed_in)
    try:
        admin = context.new_page()
        admin.goto("/admin/")
        expect(admin.locator(f'[data-admin-camera="{CAMERA}"]')).to_be_visible()
        wait_for(lambda: state_badge(admin) == "running", 15, "the camera running")

        viewer = context.new_page()  # another tab watches the camera live ...
        viewer.goto(f"/live/{CAMERA}")
        viewer.wait_for_function(PLAYING, timeout=30_000)
        assert state_badge(admin) == "running"
        viewer.close()  # ... and leaves; the hub stops the live view once the mark is old
        mark = system.hub.storage / ".live" / CAMERA / ".wanted"
        past = time.time() - 30  # as if the tab closed 30 s ago (the hub waits 20 s)
        os.utime(mark, (past, past))
        system.hub.process.wait_line(rf"{CAMERA}: live view stopped", 15)

        deadline = time.monotonic() + WATCH_SECONDS
        while time.monotonic() < deadline:
            assert state_badge(admin) == "running", system.logs()
            admin.wait_for_timeout(500)
        expect(admin.get_by_text("hub silent")).to_have_count(0)
        admin.screenshot(path=screenshot_dir / "admin-after-live-1366.png")
    finally:
        context.close()
