"""Fixtures of the browser tests: one real system (hub + edge + web app) and headless Chromium.

Playwright is imported inside the fixtures: where it or /usr/bin/chromium is missing, every
test module is skipped with the reason when it imports `.support`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .chromium import VIEWPORTS, running_chromium
from .system import ADMIN, VIEWER, System, running_system

ACTION_TIMEOUT_MS = 10_000
SCREENSHOTS = Path(__file__).parent / "screenshots"


@pytest.fixture(scope="session")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """A real hub (2-s segments), an edge pushing camera yard-test, and the web app."""
    with running_system(tmp_path_factory.mktemp("browser-system")) as running:
        yield running


@pytest.fixture(scope="session")
def playwright() -> Iterator[Any]:
    """Playwright's driver: one for the session (its sync API runs one at a time per thread)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Any) -> Iterator[Any]:
    """Debian's headless Chromium; Playwright gives each launch a fresh user-data folder."""
    with running_chromium(playwright) as chromium:
        yield chromium


@pytest.fixture(scope="session")
def signed_in(browser: Any, system: System,
              tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Log a role in once per session; return the saved cookies for new browser contexts."""
    from .support import login

    accounts = {"admin": ADMIN, "viewer": VIEWER}
    folder = tmp_path_factory.mktemp("browser-sessions")
    saved: dict[str, Path] = {}

    def state(role: str) -> Path:
        if role not in saved:
            context = browser.new_context(base_url=system.base_url)
            try:
                login(context.new_page(), *accounts[role])
                context.storage_state(path=folder / f"{role}.json")
                saved[role] = folder / f"{role}.json"
            finally:
                context.close()
        return saved[role]

    return state


@pytest.fixture
def open_page(browser: Any, system: System, signed_in: Callable[[str], Path]) -> Iterator[Callable]:
    """Open a page in a new browser context: ``open_page(viewport="phone", user="admin")``."""
    contexts = []

    def make(viewport: str = "desktop", user: str | None = None, color_scheme: str = "light",
             bypass_csp: bool = False):
        # bypass_csp: only for tools the test injects (axe-core), never to make the app work
        context = browser.new_context(
            base_url=system.base_url, viewport=VIEWPORTS[viewport], color_scheme=color_scheme,
            storage_state=signed_in(user) if user else None, bypass_csp=bypass_csp)
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(open_page: Callable) -> Any:
    """A desktop-sized page, not logged in."""
    return open_page()


@pytest.fixture
def admin_page(open_page: Callable) -> Any:
    """A desktop-sized page, logged in as the admin."""
    return open_page(user="admin")


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    """Where the screenshots go (ignored by git); printed so a person can look at them."""
    SCREENSHOTS.mkdir(exist_ok=True)
    print(f"\nbrowser screenshots: {SCREENSHOTS}")
    return SCREENSHOTS
