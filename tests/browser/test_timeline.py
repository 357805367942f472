"""The timeline page on the real system: zoom and drag, a picture on hover, a click that plays
every chosen camera from that wall-clock moment, a 4-camera grid that stays in step.

Three more cameras (grid-b, grid-c, grid-d) get copies of yard-test's first real segments,
each in a run of its own, and grid-e only the first two: at a later moment its tile says
"No footage". The rows are removed again when the module ends.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from nvrlib.catalog.db import make_engine
from nvrlib.catalog.models import Camera, MotionEvent, Outage, Run, Segment

from .support import Console, Page, expect, horizontal_overflow
from tests.support.procs import wait_for

from .system import CAMERA, System

COPIES = ("grid-b", "grid-c", "grid-d")
SHORT = "grid-e"  # has only the first two segments
SEGMENTS = 8
PLAY_TIMEOUT_MS = 60_000  # four hls.js players on a loaded machine took over 30 s once


def wait_for_segments(system: System, count: int) -> list[Any]:
    """Wait (at most 60 s) until yard-test has ``count`` live segments; return them."""
    wait_for(lambda: len(system.segments()) >= count, 60, f"{count} segments of {CAMERA}",
             interval=0.5)
    return system.segments()


def _iso(value: dt.datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@pytest.fixture(scope="module")
def footage(system: System) -> Iterator[list[Any]]:
    """yard-test's first segments, copied to four more cameras; yields yard-test's segments."""
    segments = wait_for_segments(system, SEGMENTS)[:SEGMENTS]
    engine = make_engine(system.hub.db_url)
    names = (*COPIES, SHORT)
    try:
        with Session(engine) as session:
            for name in names:
                _copy(session, system, name, segments if name != SHORT else segments[:2])
            short_id = session.scalar(select(Camera.id).where(Camera.name == SHORT))
            session.add(Outage(camera_id=short_id, started_at=segments[2].start,
                               ended_at=segments[-1].end, reason="connection_lost"))
            session.add(MotionEvent(camera_id=session.scalar(
                select(Camera.id).where(Camera.name == COPIES[0])), event_key="timeline-test",
                start_time=segments[3].start, end_time=segments[5].end, score=0.3))
            session.commit()
        yield segments
    finally:
        with Session(engine) as session:
            ids = list(session.scalars(select(Camera.id).where(Camera.name.in_(names))))
            session.execute(delete(Segment).where(Segment.camera_id.in_(ids)))
            session.execute(delete(Outage).where(Outage.camera_id.in_(ids)))
            session.execute(delete(MotionEvent).where(MotionEvent.camera_id.in_(ids)))
            session.execute(delete(Run).where(Run.camera_id.in_(ids)))
            session.execute(delete(Camera).where(Camera.id.in_(ids)))
            session.commit()
        engine.dispose()
        for name in names:
            shutil.rmtree(system.hub.storage / name, ignore_errors=True)


def _copy(session: Session, system: System, name: str, segments: list[Any]) -> None:
    """Add camera ``name`` (disabled: no hub check expects it) with copies of ``segments``."""
    camera = Camera(name=name, location="grid", enabled=False, first_seen=segments[0].start)
    session.add(camera)
    session.flush()
    run = Run(id=f"grid-{name[-1]}-{segments[0].id}", camera_id=camera.id,
              started_at=segments[0].start, ended_at=segments[-1].end,
              anchor_wall=segments[0].start, kind="push")
    session.add(run)
    for index, segment in enumerate(segments):
        source = session.get(Segment, segment.id)
        path = f"{name}/{segment.start:%Y-%m-%d}/{name}-copy-{index:03d}.ts"
        target = system.hub.storage / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(system.hub.storage / source.path, target)
        session.add(Segment(camera_id=camera.id, run_id=run.id, seq=index, location="grid",
                            start_time=source.start_time, end_time=source.end_time,
                            duration=source.duration, size_bytes=target.stat().st_size,
                            path=path, codec=source.codec, width=source.width,
                            height=source.height))


def _open(open_page, cameras: list[str], at: dt.datetime, viewport: str = "desktop",
          color_scheme: str = "light") -> Page:
    page: Page = open_page(user="viewer", viewport=viewport, color_scheme=color_scheme)
    page.set_viewport_size({"width": 1366, "height": 768} if viewport == "desktop"
                           else {"width": 375, "height": 812})
    page.goto("/timeline/?" + urlencode({"cameras": ",".join(cameras), "at": _iso(at)}))
    page.wait_for_function("() => document.getElementById('nvr-tl').hasAttribute('data-loaded')")
    return page


def _view(page: Page) -> tuple[float, float]:
    return page.evaluate("[nvrTimeline.view.start, nvrTimeline.view.end]")


def _point(page: Page, camera: str, when: dt.datetime) -> tuple[float, float]:
    """The page coordinates of ``camera``'s row at wall-clock time ``when``."""
    box = page.locator("#nvr-tl-canvas").bounding_box()
    x, y = page.evaluate("([t, c]) => [nvrTimeline.xOf(t), nvrTimeline.rowTop(c) + 12]",
                         [when.timestamp() * 1000, camera])
    return box["x"] + x, box["y"] + y


def _wait_playing(page: Page, seconds: float) -> list[dict]:
    """Wait until every tile with footage plays and has played ``seconds``; return the state."""
    page.wait_for_function(
        "() => nvrTimeline.players.state().every(t => t.noFootage ||"
        " (!t.paused && t.readyState >= 3 && t.wall !== null)) && nvrTimeline.players.playing"
        " && !nvrTimeline.players.waiting", timeout=PLAY_TIMEOUT_MS)
    start = page.evaluate("nvrTimeline.players.wall")
    page.wait_for_function("w => nvrTimeline.players.wall >= w", arg=start + seconds * 1000,
                           timeout=PLAY_TIMEOUT_MS)
    return page.evaluate("nvrTimeline.players.state()")


def test_zoom_drag_hover_picture_and_a_click_plays_from_that_moment(
        open_page, footage: list[Any], system: System) -> None:
    page = _open(open_page, [CAMERA, SHORT], footage[3].start)
    console = Console(page)
    start, end = _view(page)
    x, y = _point(page, CAMERA, footage[3].start)
    page.mouse.move(x, y)
    page.mouse.wheel(0, -600)  # zoom in around the pointer
    page.wait_for_function("s => nvrTimeline.view.end - nvrTimeline.view.start < s", arg=end - start)
    zoomed = _view(page)
    assert zoomed[1] - zoomed[0] < (end - start) / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 150, y, steps=5)
    page.mouse.up()
    dragged = _view(page)
    assert dragged[0] < zoomed[0]  # dragged right: earlier times come into view

    # Hover over footage: the picture of that moment.
    clicked = footage[3].start + dt.timedelta(seconds=0.5)
    x, y = _point(page, CAMERA, clicked)
    page.mouse.move(x - 2, y)
    page.mouse.move(x, y)
    picture = page.locator("#nvr-tl-tip-img")
    expect(picture).to_be_visible()
    assert picture.evaluate("img => img.naturalWidth") > 0
    expect(page.locator("#nvr-tl-tip-text")).to_contain_text("footage")
    # Over grid-e's gap: the outage's reason; over grid-b's motion: "motion".
    page.mouse.move(*_point(page, SHORT, clicked))
    expect(page.locator("#nvr-tl-tip-text")).to_contain_text("gap: connection lost")
    page.mouse.move(*_point(page, COPIES[0], clicked))
    expect(page.locator("#nvr-tl-tip-text")).to_contain_text("motion")
    x, y = _point(page, CAMERA, clicked)

    page.mouse.click(x, y)
    requested = page.evaluate("Date.parse(document.getElementById('nvr-tl').dataset.clicked)")
    state = _wait_playing(page, 0.0)
    tile = next(t for t in state if t["camera"] == CAMERA)
    # The picture shown: its fragment's wall-clock start plus how far into it the player is.
    shown = tile["fragmentDateTime"] + (tile["currentTime"] - tile["fragmentStart"]) * 1000
    played = page.evaluate("nvrTimeline.players.wall") - requested
    assert abs(shown - requested) <= 1000 + played, (shown - requested, played, state)
    assert abs(requested - clicked.timestamp() * 1000) < 1000
    short = next(t for t in state if t["camera"] == SHORT)
    assert short["noFootage"], state  # grid-e has nothing after its second segment
    expect(page.locator(f'.nvr-tile[data-camera="{SHORT}"] .nvr-tile-empty')).to_be_visible()

    # Keys: space pauses, the right arrow steps 10 s, L plays again and then faster.
    page.keyboard.press(" ")
    assert page.evaluate("nvrTimeline.players.playing") is False
    before = page.evaluate("nvrTimeline.players.wall")
    page.keyboard.press("ArrowRight")
    assert page.evaluate("nvrTimeline.players.wall") - before == pytest.approx(10_000, abs=1)
    page.keyboard.press("l")
    page.keyboard.press("l")
    assert page.evaluate("[nvrTimeline.players.playing, nvrTimeline.players.rate]") == [True, 2]
    assert console.csp_violations() == []


def test_a_four_camera_grid_stays_in_step_after_a_seek(open_page, footage: list[Any]) -> None:
    cameras = [CAMERA, *COPIES]
    page = _open(open_page, cameras, footage[2].start)
    page.evaluate("t => nvrTimeline.playFrom(t)", footage[1].start.timestamp() * 1000)
    _wait_playing(page, 1.0)
    later = footage[4].start + dt.timedelta(seconds=0.7)
    x, y = _point(page, CAMERA, later)
    page.mouse.click(x, y)  # seek every camera to a new moment
    state = _wait_playing(page, 1.5)
    walls = [tile["wall"] for tile in state]
    assert len(walls) == 4 and None not in walls, state
    assert max(walls) - min(walls) <= 500, state
    assert abs(page.evaluate("nvrTimeline.players.wall") - min(walls)) < 1500


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_timeline_screenshots(open_page, footage: list[Any], screenshot_dir: Path,
                              viewport: str, color_scheme: str) -> None:
    page = _open(open_page, [CAMERA, *COPIES], footage[3].start, viewport, color_scheme)
    console = Console(page)
    loaded = page.get_attribute("#nvr-tl", "data-loaded")
    page.evaluate("([a, b]) => nvrTimeline.setView(a, b)",  # the copied footage, close up
                  [(footage[0].start.timestamp() - 20) * 1000,
                   (footage[-1].end.timestamp() + 40) * 1000])
    page.wait_for_function("v => document.getElementById('nvr-tl').dataset.loaded !== v",
                           arg=loaded)
    page.evaluate("t => nvrTimeline.playFrom(t)", footage[3].start.timestamp() * 1000)
    page.wait_for_function("() => nvrTimeline.players.state().every(t => t.readyState >= 2)",
                           timeout=PLAY_TIMEOUT_MS)
    page.keyboard.press("k")  # pause for a still picture
    width = 1366 if viewport == "desktop" else 375
    page.screenshot(path=screenshot_dir / f"timeline-{width}px-{color_scheme}.png", full_page=True)
    assert horizontal_overflow(page) <= 0
    assert console.csp_violations() == []
