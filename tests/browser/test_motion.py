"""Motion in the browser: an admin draws a mask zone on the camera's picture and it is saved;
the events page shows a motion event with its snapshot, enlarged on a click."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from nvrlib.catalog.db import make_engine
from nvrlib.catalog.models import Camera, MotionEvent
from nvrlib.ffmpeg_bin import ffmpeg_exe
from tests.support.procs import wait_for

from .support import Console, Page, expect
from .system import CAMERA, System


def _mask(system: System) -> list[list[list[float]]]:
    engine = make_engine(system.hub.db_url)
    try:
        with Session(engine) as session:
            text = session.scalar(select(Camera.motion_mask).where(Camera.name == CAMERA))
            return json.loads(text or "[]")
    finally:
        engine.dispose()


def test_an_admin_draws_a_mask_zone_and_it_is_saved(admin_page: Page, system: System) -> None:
    wait_for(lambda: system.segments(), 30, "a first segment (the camera's picture)")
    page = admin_page
    console = Console(page)
    page.goto("/admin/")
    page.locator(f'[data-admin-camera="{CAMERA}"]').get_by_role("link", name="Motion").click()
    expect(page).to_have_url(re.compile(rf"/admin/cameras/{CAMERA}/motion$"))
    picture = page.locator("img[data-mask-picture]")
    expect(picture).to_be_visible()
    wait_for(lambda: picture.evaluate("img => img.complete && img.naturalWidth > 0"), 30,
             "the camera's latest picture")
    canvas = page.locator("[data-mask-canvas]")
    box = canvas.bounding_box()
    assert box is not None and box["width"] > 100 and box["height"] > 50
    corners = [(0.1, 0.1), (0.5, 0.1), (0.5, 0.4), (0.1, 0.4)]
    for x, y in corners:
        canvas.click(position={"x": box["width"] * x, "y": box["height"] * y})
    page.get_by_role("button", name="Close zone").click()
    expect(page.locator("[data-mask-zone]")).to_have_count(1)
    page.get_by_label(re.compile("^Sensitivity")).fill("65")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text(f"Saved the motion settings of {CAMERA}")
    [zone] = _mask(system)
    assert len(zone) == 4
    for (x, y), (want_x, want_y) in zip(zone, corners):
        assert abs(x - want_x) < 0.02 and abs(y - want_y) < 0.02, zone
    # the page shows the saved zone again, and it can be deleted
    expect(page.locator("[data-mask-zone]")).to_have_count(1)
    page.get_by_role("button", name="Delete zone 1").click()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text("Saved")
    assert _mask(system) == []
    assert console.csp_violations() == []


@pytest.fixture
def motion_event(system: System) -> Iterator[int]:
    """A motion event of the test camera at its first footage, with a real JPEG snapshot."""
    first = system.segments()[0].start
    relative = f"{CAMERA}/motion/browser-test.jpg"
    target = system.hub.storage / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
                    "-i", "testsrc2=size=320x180", "-frames:v", "1", str(target)],
                   check=True, timeout=60)
    engine = make_engine(system.hub.db_url)
    try:
        with Session(engine) as session:
            camera_id = session.scalar(select(Camera.id).where(Camera.name == CAMERA))
            event = MotionEvent(camera_id=camera_id, event_key="browser-test-motion",
                                start_time=first, end_time=first + dt.timedelta(seconds=3),
                                score=0.2, box_x=0.1, box_y=0.1, box_w=0.3, box_h=0.3,
                                snapshot_path=relative, source="edge")
            session.add(event)
            session.commit()
            event_id = event.id
        yield event_id
        with Session(engine) as session:
            session.execute(delete(MotionEvent).where(MotionEvent.id == event_id))
            session.commit()
    finally:
        engine.dispose()
        target.unlink(missing_ok=True)


def test_the_events_page_shows_a_motion_event_with_its_snapshot(
        open_page: Callable, motion_event: int) -> None:
    page = open_page(user="viewer")
    console = Console(page)
    page.goto("/events/")
    page.get_by_label("Type").select_option("motion")
    page.get_by_role("button", name="Filter").click()
    row = page.locator(f'tr[data-event="motion"][data-event-id="{motion_event}"]')
    expect(row).to_be_visible()
    thumbnail = row.locator('img[data-field="snapshot"]')
    wait_for(lambda: thumbnail.evaluate("img => img.complete && img.naturalWidth === 320"), 15,
             "the snapshot thumbnail")
    expect(row.locator('[data-field="play"]')).to_have_attribute(
        "href", re.compile(rf"/recordings/play\?camera={CAMERA}&start="))
    thumbnail.click()
    enlarged = page.locator("dialog[data-enlarged] img")
    expect(enlarged).to_be_visible()
    assert enlarged.evaluate("img => img.getBoundingClientRect().width") > 300
    page.get_by_role("button", name="Close").click()
    expect(enlarged).to_be_hidden()
    assert console.csp_violations() == []
