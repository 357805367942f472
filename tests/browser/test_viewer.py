"""What a viewer (watch and export only) may not see."""

from __future__ import annotations

from .support import Page, expect


def test_viewer_sees_no_admin_link_and_gets_403_at_admin(open_page) -> None:
    page: Page = open_page(user="viewer")
    page.goto("/")
    nav = page.get_by_role("navigation")
    expect(nav.get_by_role("link", name="Recordings")).to_be_visible()
    expect(nav.get_by_role("link", name="Admin")).to_have_count(0)
    response = page.goto("/admin/")
    assert response is not None and response.status == 403
