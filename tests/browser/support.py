"""Helpers of the browser tests. Importing this fails the test module, with the reason, where
/usr/bin/chromium or playwright is missing (see tests/support/requirements.py)."""

from __future__ import annotations

import re


from tests.support.requirements import require

from .chromium import unavailable_reason

require(unavailable_reason(), module_level=True)

from playwright.sync_api import APIRequestContext, ConsoleMessage, Page, expect  # noqa: E402

__all__ = ["APIRequestContext", "Console", "Page", "expect", "horizontal_overflow", "login"]

CSP_WORDS = re.compile(r"content security policy", re.IGNORECASE)


def login(page: Page, user: str, password: str) -> None:
    """Log in through the login form and wait until the browser has left it."""
    page.goto("/auth/login")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/auth/login" not in url)


class Console:
    """Collect a page's console messages (across navigations) to look for CSP violations."""

    def __init__(self, page: Page) -> None:
        self.messages: list[str] = []
        page.on("console", self._add)

    def _add(self, message: ConsoleMessage) -> None:
        self.messages.append(f"{message.type}: {message.text}")

    def csp_violations(self) -> list[str]:
        """The messages in which Chromium reports a Content Security Policy violation."""
        return [text for text in self.messages if CSP_WORDS.search(text)]


def horizontal_overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than the window (0: no horizontal scrolling)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
