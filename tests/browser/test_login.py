"""Logging in through the real login page."""

from __future__ import annotations

import re

from .support import Page, expect, login
from .system import ADMIN, CAMERA


def test_admin_logs_in_and_sees_the_dashboard_with_the_camera(page: Page) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/auth/login"))  # no session: sent to log in first
    login(page, *ADMIN)
    expect(page.get_by_role("heading", name="Cameras", level=1)).to_be_visible()
    expect(page.get_by_role("heading", name=CAMERA)).to_be_visible()
    expect(page.get_by_role("button", name=ADMIN[0])).to_be_visible()  # the user menu


def test_wrong_password_shows_an_error_and_stays_on_the_login_page(page: Page) -> None:
    page.goto("/auth/login")
    page.get_by_label("Username").fill(ADMIN[0])
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("Wrong username or password")
    expect(page).to_have_url(re.compile(r"/auth/login"))
    expect(page.get_by_label("Password")).to_have_value("")
