"""axe-core (WCAG 2 A and AA, contrast included) on every page, in the light and dark themes."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from .support import Page, expect
from .system import CAMERA, System

try:
    from axe_playwright_python.base import AXE_SCRIPT
except ImportError:  # a dev requirement: tests/browser is skipped without Playwright anyway
    AXE_SCRIPT = ""

# Every page a person opens (name: path; None is built from the system's footage).
PAGES: dict[str, str | None] = {
    "login": "/auth/login", "dashboard": "/", "recordings": f"/recordings/?camera={CAMERA}",
    "day-timeline": f"/recordings/timeline/{CAMERA}", "timeline": f"/timeline/?cameras={CAMERA}",
    "player": None, "live": "/live/",
    "live-camera": f"/live/{CAMERA}", "events": "/events/", "locks": "/protect/",
    "new-lock": "/protect/new", "admin": "/admin/", "add-camera": "/admin/cameras/new",
    "tokens": "/admin/tokens", "alerts": "/admin/alerts/", "users": "/users/",
    "new-user": "/users/new", "health": "/health", "motion": f"/admin/cameras/{CAMERA}/motion",
    "people": "/people/",
}
SERIOUS = {"serious", "critical"}


def violations(page: Page) -> list[dict[str, Any]]:
    """Run axe-core on the page; return the serious and critical WCAG A/AA violations."""
    page.evaluate(AXE_SCRIPT)
    result = page.evaluate("""() => axe.run(document, {
        runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']},
        resultTypes: ['violations']})""")
    return [v for v in result["violations"] if v["impact"] in SERIOUS]


def describe(found: list[dict[str, Any]]) -> str:
    lines = []
    for violation in found:
        for node in violation["nodes"][:6]:
            lines.append(f"{violation['id']}: {node['target']} {node['failureSummary'][:160]}")
    return "\n".join(lines)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_page_has_a_serious_accessibility_violation(open_page, system: System,
                                                       scheme: str) -> None:
    pages = {role: open_page(user=role, color_scheme=scheme, bypass_csp=True)
             for role in (None, "admin")}
    problems = []
    for name, path in PAGES.items():
        page: Page = pages[None if name == "login" else "admin"]
        page.goto(path or "/recordings/play?" + urlencode(
            {"camera": CAMERA, "start": system.segments()[0].start_iso}))
        expect(page.locator("main").first).to_be_visible()
        assert page.evaluate("document.documentElement.dataset.bsTheme") == scheme
        found = violations(page)
        if found:
            problems.append(f"{name} ({scheme}):\n{describe(found)}")
    assert not problems, "\n".join(problems)
