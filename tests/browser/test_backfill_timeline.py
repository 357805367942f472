"""Back-filled footage on the day timeline: hatched inside the outage it fills, with a legend.

Rows are written into the running hub's catalog as the hub writes back-filled segments
(copies of a real segment file, `backfilled = true`), inside an outage, before the camera's
first live footage.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from nvrlib.catalog.db import make_engine
from nvrlib.catalog.models import Camera, Outage, Segment

from .support import Console, Page, expect, horizontal_overflow
from .system import CAMERA, System

MINUTE = dt.timedelta(minutes=1)


def _clear_of_midnight(first_live: dt.datetime) -> dt.datetime:
    """The moment to seed before: `first_live`, or earlier so the 15-min stretch stays in one day.

    The page shows one day; a stretch across midnight is cut in two (a run at 00:30 UTC showed
    "9 min 29 s back-filled").
    """
    start, end = first_live - 55 * MINUTE, first_live - 40 * MINUTE
    midnight = end.replace(hour=0, minute=0, second=0, microsecond=0)
    return first_live - (end - midnight) if start < midnight < end else first_live


@pytest.fixture(scope="module")
def backfilled(system: System) -> Iterator[tuple[dt.datetime, dt.datetime]]:
    """15 min of back-filled footage inside a 25-min outage, 35 min before the live footage."""
    first = system.segments()[0]
    base = _clear_of_midnight(first.start)
    start, end = base - 55 * MINUTE, base - 40 * MINUTE
    engine = make_engine(system.hub.db_url)
    try:
        with Session(engine) as session:
            source = session.get(Segment, first.id)
            assert source is not None
            camera_id = session.scalar(select(Camera.id).where(Camera.name == CAMERA))
            session.add(Outage(camera_id=camera_id, started_at=base - 60 * MINUTE,
                               ended_at=base - 35 * MINUTE, reason="connection_lost",
                               detail="network cut (browser test)", backfilled_seconds=900.0))
            for index in range(15):
                at = start + index * MINUTE
                path = f"{CAMERA}/{at:%Y-%m-%d}/{CAMERA}-backfill-test-{index:03d}.ts"
                target = system.hub.storage / path
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(system.hub.storage / source.path, target)
                session.add(Segment(camera_id=camera_id, seq=index, start_time=at,
                                    end_time=at + MINUTE, duration=60.0,
                                    size_bytes=target.stat().st_size, path=path, codec="h264",
                                    width=source.width, height=source.height, backfilled=True))
            session.commit()
        yield start, end
    finally:
        engine.dispose()


def test_backfilled_footage_is_hatched_on_the_timeline_with_a_legend(
        open_page, backfilled: tuple[dt.datetime, dt.datetime], screenshot_dir: Path) -> None:
    start, end = backfilled
    page: Page = open_page(user="viewer")
    page.set_viewport_size({"width": 1366, "height": 768})
    console = Console(page)
    at = (start + (end - start) / 2).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    page.goto(f"/recordings/timeline/{CAMERA}?at={at}&tz=UTC")
    # The live edge may back-fill real footage of its own (after a hub restart in another test):
    # pick the seeded stretch by where it starts on the day's axis.
    x = round((start - start.replace(hour=0, minute=0, second=0, microsecond=0))
              .total_seconds(), 3)
    bar = page.locator(f'svg.nvr-timeline rect[data-backfilled][x="{x}"]')
    expect(bar).to_have_count(1)
    expect(bar.locator("title")).to_contain_text("Back-filled from the edge's spool")
    expect(page.locator("figcaption")).to_contain_text("back-filled")
    expect(page.locator("[data-backfilled-stretch]").first).to_have_text("15 min 0 s back-filled")
    fills = page.evaluate(
        "() => [getComputedStyle(document.querySelector('.nvr-timeline-backfilled')).fill,"
        " getComputedStyle(document.querySelector('.nvr-timeline-covered')).fill]")
    assert fills[0].startswith("url(") and fills[0] != fills[1], fills
    box = bar.bounding_box()
    assert box is not None and box["width"] >= 5, box  # 15 min of 24 h at 1366 px: ~14 px
    page.screenshot(path=screenshot_dir / "timeline-backfilled-1366px.png")
    assert horizontal_overflow(page) <= 0
    assert console.csp_violations() == []
