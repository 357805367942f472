"""Finding footage on the recordings search page."""

from __future__ import annotations

import re

from .support import Page, expect
from .system import CAMERA, LOCATION, MIN_SEGMENTS


def test_search_by_camera_lists_its_recordings_with_thumbnails(open_page) -> None:
    page: Page = open_page(user="admin")
    page.goto("/recordings/?view=files")
    page.get_by_label("Camera").select_option(CAMERA)
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile(rf"[?&]camera={CAMERA}(&|$)"))

    rows = page.locator("table tbody tr")
    expect(rows.first).to_be_visible()
    assert rows.count() >= MIN_SEGMENTS
    for cell in rows.locator("td[data-label=Camera]").all_inner_texts():
        assert cell.strip() == CAMERA
    expect(rows.first.locator("td[data-label=Location]")).to_have_text(LOCATION)

    thumbnail = rows.first.get_by_role("img", name=re.compile(f"^First picture of {CAMERA}"))
    expect(thumbnail).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                           arg=thumbnail.element_handle(), timeout=15_000)
