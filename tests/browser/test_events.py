"""Events and alerts in the browser: the events page, outages on the timeline, a test email.

The outage and alerts are written into the running hub's catalog with the recorder's models,
before the camera's first footage, so that the timeline shows a gap the outage explains.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from nvrlib.catalog.db import make_engine
from nvrlib.catalog.models import Alert, Camera, Outage
from tests.support.procs import wait_for

from .support import Console, Page, expect, horizontal_overflow
from .system import CAMERA, System

OTHER_CAMERA = "elsewhere-test"
TEST_EMAIL_SECONDS = 15  # the hub's sender polls every second


@dataclass(frozen=True)
class Seeded:
    """What the test wrote: the outage's span and the alerts' subjects."""

    outage_start: dt.datetime
    outage_end: dt.datetime
    offline_subject: str
    online_subject: str
    other_subject: str

    @property
    def middle_iso(self) -> str:
        """The outage's midpoint, as the web app's URLs carry times."""
        middle = self.outage_start + (self.outage_end - self.outage_start) / 2
        return middle.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@pytest.fixture(scope="module")
def seeded(system: System) -> Iterator[Seeded]:
    """An ended outage of the test camera before its first footage, and three alerts."""
    first = system.segments()[0].start
    seeded = Seeded(first - dt.timedelta(minutes=20), first - dt.timedelta(minutes=5),
                    f"[NVR] {CAMERA} is offline (browser test)",
                    f"[NVR] {CAMERA} is back (browser test)",
                    f"[NVR] {OTHER_CAMERA} is offline (browser test)")
    engine = make_engine(system.hub.db_url)
    try:
        with Session(engine) as session:
            camera_id = session.scalar(select(Camera.id).where(Camera.name == CAMERA))
            session.add(Outage(camera_id=camera_id, started_at=seeded.outage_start,
                               ended_at=seeded.outage_end, reason="connection_lost",
                               detail="seeded by the browser test"))
            details = json.dumps({"reason": "connection_lost"})
            session.add_all([
                Alert(created_at=seeded.outage_start, kind="offline", camera=CAMERA,
                      subject=seeded.offline_subject, details=details, status="sent",
                      attempts=1, sent_at=seeded.outage_start),
                Alert(created_at=seeded.outage_end, kind="online", camera=CAMERA,
                      subject=seeded.online_subject, status="failed", attempts=5,
                      last_error="SendGrid answered 500"),
                Alert(created_at=seeded.outage_end, kind="offline", camera=OTHER_CAMERA,
                      subject=seeded.other_subject, status="logged"),
            ])
            session.commit()
        yield seeded
    finally:
        engine.dispose()


def test_events_filtered_by_camera_then_the_outage_on_the_timeline(open_page, seeded: Seeded,
                                                                   screenshot_dir: Path) -> None:
    page: Page = open_page(user="viewer")
    page.goto("/")
    page.get_by_role("link", name="Events").click()
    page.get_by_label("Camera").select_option(CAMERA)
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(rf"[?&]camera={CAMERA}(&|$)"))

    table = page.locator("table.nvr-events")
    expect(table.get_by_text(seeded.offline_subject)).to_be_visible()
    expect(table.get_by_text(seeded.online_subject)).to_be_visible()
    expect(table.get_by_text(seeded.other_subject)).to_have_count(0)
    for cell in table.locator("td[data-label=Camera]").all_inner_texts():
        assert cell.strip() == CAMERA

    failed = table.locator("tr", has_text=seeded.online_subject)
    expect(failed.locator('[data-field="status"]')).to_have_text("failed")
    expect(failed.locator('[data-field="last-error"]')).to_have_count(0)  # admins only
    # the browser shows local time; the UTC time is in the title
    when = failed.locator("time[data-local-time]")
    expect(when).to_have_attribute("title", re.compile(r"Z$"))

    outage = table.locator('tr[data-event="outage"]', has_text="seeded by the browser test")
    expect(outage.locator('[data-field="reason"]')).to_have_text("connection lost")
    expect(outage.locator('[data-field="end"]')).to_contain_text("until")
    expect(outage.locator('[data-field="duration"]')).to_have_text("(15 min 0 s)")

    page.goto(f"/recordings/timeline/{CAMERA}?at={seeded.middle_iso}&tz=UTC")
    band = page.locator('svg.nvr-timeline rect[data-outage-reason="connection_lost"]')
    expect(band).to_have_count(1)
    expect(band.locator("title")).to_contain_text("connection lost: ")
    gap = page.locator('li[data-gap-reasons="connection_lost"]')
    expect(gap.get_by_text("connection lost")).to_be_visible()
    expect(gap.locator(".nvr-badge-outage")).to_have_attribute(
        "title", re.compile(r"^connection lost: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC – "))
    # the band is drawn in the outage colour, not the plain gap's
    colours = page.evaluate(
        "() => [getComputedStyle(document.querySelector('.nvr-timeline-outage')).fill,"
        " getComputedStyle(document.querySelector('.nvr-timeline-gap')).fill]")
    assert colours[0] != colours[1]
    page.screenshot(path=screenshot_dir / "timeline-outage-1280px.png", full_page=True)


def _test_status(page: Page) -> str:
    page.reload()
    return page.locator('[data-field="test-status"]').inner_text().strip()


def test_an_admin_sends_a_test_email_and_sees_its_status(admin_page: Page,
                                                         system: System) -> None:
    page = admin_page
    page.goto("/admin/")
    page.get_by_role("link", name="Alert settings").click()
    expect(page.get_by_role("heading", name="Alerts", exact=True)).to_be_visible()
    # the hub publishes its email state with each heartbeat; the tests run it without SendGrid
    expect(page.locator('[data-field="email-state"]')).to_contain_text("email off")
    expect(page.locator('[data-hub-state="not-running"]')).to_have_count(0)

    page.get_by_role("button", name="Send test email").click()
    expect(page.get_by_role("alert")).to_contain_text("Test email queued")
    status = page.locator('[data-field="test-status"]')
    # pending until the hub's sender takes it; with email off the hub then logs it
    expect(status).to_have_text(re.compile(r"^(pending|logged)$"))
    wait_for(lambda: _test_status(page) == "logged", TEST_EMAIL_SECONDS,
             "the hub to log the test email (email is off)", interval=0.5)


@pytest.mark.parametrize(("viewport", "scheme"), [("phone", "light"), ("desktop", "light"),
                                                  ("phone", "dark")])
@pytest.mark.parametrize("name", ["events", "alerts"])
def test_events_and_alerts_pages_fit_without_csp_violations(open_page, seeded: Seeded,
                                                            screenshot_dir: Path, name: str,
                                                            viewport: str, scheme: str) -> None:
    page: Page = open_page(viewport=viewport, user="admin", color_scheme=scheme)
    console = Console(page)
    page.goto(f"/events/?camera={CAMERA}" if name == "events" else "/admin/alerts/")
    expect(page.locator("table.nvr-events" if name == "events" else "#test-heading")
           ).to_be_visible()
    width = "375px" if viewport == "phone" else "1280px"
    suffix = "-dark" if scheme == "dark" else ""
    page.screenshot(path=screenshot_dir / f"{name}-{width}{suffix}.png", full_page=True)
    assert horizontal_overflow(page) <= 0, f"{name} scrolls sideways at {width}"
    assert console.csp_violations() == []
