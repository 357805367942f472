"""Which browser the tests drive and how: Debian's Chromium, launched by Playwright.

Playwright's Python package ships its driver but never downloads a browser here (the machines
have no internet for that): the tests launch /usr/bin/chromium, installed by
scripts/install-test-deps.sh.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

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
