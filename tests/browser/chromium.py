"""Which browser the tests drive and how: Debian's Chromium, launched by Playwright.

Playwright's Python package ships its driver but never downloads a browser here (the machines
have no internet for that): the tests launch /usr/bin/chromium, installed by
scripts/install-test-deps.sh.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
# Viewport presets: a small phone (the narrowest width the issue names) and a laptop.
VIEWPORTS = {
    "phone": {"width": 375, "height": 812},
    "desktop": {"width": 1280, "height": 800},
}


def unavailable_reason() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing: run scripts/install-test-deps.sh (Debian package chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is missing: pip install -r requirements-dev.txt"
    return None


@contextlib.contextmanager
def running_chromium(playwright: Any, *extra_args: str) -> Iterator[Any]:
    """Debian's headless Chromium with CHROMIUM_ARGS and ``extra_args``; closed on the way out.

    ``playwright``: the session's driver (its sync API allows one per thread). Playwright gives
    each launch a fresh user-data folder."""
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                          args=[*CHROMIUM_ARGS, *extra_args])
    try:
        yield chromium
    finally:
        chromium.close()
