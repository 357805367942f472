"""Protecting footage from deletion: the Protect button, the Locks page, the indicators."""

from __future__ import annotations

import contextlib
import re
import sqlite3

from .support import Console, Page, expect
from .system import CAMERA, System


def _drop_locks(system: System, user: str) -> None:
    """Remove whatever locks this test left behind (other browser tests share the system)."""
    with contextlib.closing(sqlite3.connect(system.hub.db_path, timeout=10)) as conn:
        conn.execute("DELETE FROM locks WHERE created_by = ?", (user,))
        conn.commit()


def test_a_viewer_protects_a_recording_sees_it_locked_and_removes_the_lock(
        open_page, system: System) -> None:
    page: Page = open_page(user="viewer")
    console = Console(page)
    try:
        page.goto(f"/recordings/?view=files&camera={CAMERA}")
        first_row = page.locator("table tbody tr").first
        action = first_row.locator("form.nvr-protect-form").get_attribute("action")
        segment_id = re.fullmatch(r"/protect/recordings/(\d+)", action or "").group(1)
        first_row.get_by_role("textbox", name=re.compile(r"^Reason to protect")).fill("fox")
        first_row.get_by_role("button", name=re.compile(r"^Protect the recording")).click()

        expect(page.get_by_role("alert")).to_contain_text(f"Protected {CAMERA} from")
        expect(page).to_have_url(re.compile(rf"/recordings/\?view=files&camera={CAMERA}$"))
        # Newer recordings may have arrived above it: find the row by its picture.
        row = page.locator(f'tr:has(img[src="/recordings/{segment_id}/thumbnail.jpg"])')
        expect(row.locator("[data-protected]")).to_have_text("Protected")
        expect(row.locator("form.nvr-protect-form")).to_have_count(0)

        page.get_by_role("link", name="Locks").click()
        lock = page.locator("table[data-locks] tbody tr")
        expect(lock).to_have_count(1)
        expect(lock.locator("td[data-label=Camera]")).to_have_text(CAMERA)
        expect(lock.locator("td[data-label=By]")).to_have_text("viewer")

        page.goto(f"/recordings/?view=files&camera={CAMERA}")
        row.get_by_role("link", name="Day").click()
        expect(page.locator("svg.nvr-timeline rect[data-locked]")).to_have_count(1)

        page.goto("/protect/")
        lock.get_by_role("button", name=re.compile(r"^Remove the lock")).click()
        expect(page.get_by_role("alert")).to_contain_text(f"Removed the lock on {CAMERA}")
        expect(page.locator("table[data-locks]")).to_have_count(0)
        expect(page.get_by_text("Nothing is protected.")).to_be_visible()
        assert console.csp_violations() == []
    finally:
        _drop_locks(system, "viewer")


def test_a_viewer_over_the_hours_cap_is_told_why_in_the_form(open_page, system: System) -> None:
    page: Page = open_page(user="viewer")
    try:
        page.goto("/protect/new")
        expect(page.locator("[data-lock-caps]")).to_contain_text("72")
        expect(page.get_by_role("option", name=re.compile("All cameras"))).to_have_count(0)
        page.get_by_label("Camera").select_option(CAMERA)
        page.get_by_label("From").fill("2026-01-01T00:00:00")
        page.get_by_label("To").fill("2026-01-05T00:00:00")  # 96 hours: over the default 72
        page.get_by_label("Reason").fill("parcel stolen")
        page.get_by_role("button", name="Protect").click()
        expect(page.locator(".invalid-feedback")).to_contain_text(
            "a viewer's locks may cover at most 72 hours in all")
    finally:
        _drop_locks(system, "viewer")
