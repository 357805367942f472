"""The People page in Chromium: an admin adds a person, enrolls a photo by uploading it, names
an unknown face the camera saw ("This is..."), and deletes a person through the confirm dialog;
screenshots at 1366x768 and 375x812, light and dark."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from nvrlib import faces
from nvrlib.catalog.db import make_engine
from nvrlib.catalog.models import Camera, FaceSample, FaceSighting, Person
from tests.support.face_photos import missing_reason, photos_dir
from tests.support.procs import wait_for
from tests.support.requirements import require

from .support import Console, Page, expect, horizontal_overflow
from .test_accessibility import describe, violations
from .system import CAMERA, System

require(missing_reason(), module_level=True,
        remedy="fetch them with scripts/fetch-face-photos.sh; scripts/test.sh does")

LOOKS = {"desktop": {"width": 1366, "height": 768}, "phone": {"width": 375, "height": 812}}


def _catalog(system: System) -> Any:
    return make_engine(system.hub.db_url)


@pytest.fixture(scope="module")
def unknown_faces(system: System) -> Iterator[dict[str, int]]:
    """Two unknown face sightings of the test camera (obama2.jpg's and biden.jpg's faces, found
    by a real engine), their crops in the hub's storage; every face row is removed after."""
    engine_faces = faces.FaceEngine()
    catalog = _catalog(system)
    ids: dict[str, int] = {}
    try:
        with Session(catalog) as session:
            camera_id = session.scalar(select(Camera.id).where(Camera.name == CAMERA))
            for minutes, photo in ((5, "obama2.jpg"), (3, "biden.jpg")):
                image = faces.decode_image((photos_dir() / photo).read_bytes())
                [face] = engine_faces.find(image)
                key = f"browser-people-{photo[:-4]}"
                relative = f"{CAMERA}/faces/{key}.jpg"
                target = system.hub.storage / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(faces.crop_jpeg(image, face.box, size=160))
                start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=minutes)
                row = FaceSighting(sighting_key=key, camera_id=camera_id, start_time=start,
                                   end_time=start + dt.timedelta(seconds=6), box_x=0.4,
                                   box_y=0.2, box_w=0.1, box_h=0.2, face_size=face.size,
                                   score=face.score, crop_path=relative,
                                   embedding=faces.embedding_to_bytes(face.embedding))
                session.add(row)
                session.commit()
                ids[photo] = row.id
        yield ids
    finally:
        with Session(catalog) as session:  # the other browser tests share this system
            session.execute(delete(FaceSighting))
            session.execute(delete(FaceSample))
            session.execute(delete(Person))
            session.commit()
        catalog.dispose()


def _open(browser: Any, system: System, signed_in: Callable[[str], Path], look: str,
          scheme: str, bypass_csp: bool = False) -> tuple[Any, Page]:
    # bypass_csp: only to inject axe-core, as the accessibility test does
    context = browser.new_context(base_url=system.base_url, viewport=LOOKS[look],
                                  color_scheme=scheme, storage_state=signed_in("admin"),
                                  bypass_csp=bypass_csp)
    context.set_default_timeout(15_000)
    return context, context.new_page()


def _card(page: Page, name: str) -> Any:
    return page.locator(f'[data-person="{name}"]')


def test_an_admin_enrolls_a_photo_and_an_unknown_face_then_deletes_a_person(
        browser: Any, system: System, signed_in: Callable[[str], Path],
        unknown_faces: dict[str, int],
        screenshot_dir: Path) -> None:
    context, page = _open(browser, system, signed_in, "desktop", "light")
    try:
        console = Console(page)
        page.goto("/")
        page.get_by_role("link", name="People").click()
        expect(page).to_have_url(re.compile(r"/people/$"))
        expect(page.locator("[data-privacy-note]")).to_contain_text("Face data stays on the hub")
        page.get_by_label("Name of the new person").fill("Barack")
        page.get_by_role("button", name="Add person").click()
        expect(page.get_by_role("alert").first).to_contain_text("Added Barack")
        card = _card(page, "Barack")
        card.get_by_label(re.compile("^Add photos")).set_input_files(
            str(photos_dir() / "obama.jpg"))
        card.get_by_role("button", name="Upload").click()
        expect(page.get_by_role("alert").first).to_contain_text("obama.jpg: added.")
        expect(_card(page, "Barack").locator("[data-sample]")).to_have_count(1)
        expect(_card(page, "Barack").locator("img.nvr-person-photo")).to_be_visible()

        # "This is..." on the unknown face: an existing person, similar faces named too
        face = page.locator(f'[data-unknown-face="{unknown_faces["obama2.jpg"]}"]')
        expect(face.locator("img")).to_be_visible()
        face.get_by_text("This is…").click()
        face.get_by_label("Person").select_option(label="Barack")
        expect(face.get_by_label("New name")).to_be_hidden()
        face.get_by_role("button", name="Save").click()
        expect(page.get_by_role("alert").first).to_contain_text("Named this face Barack")
        expect(_card(page, "Barack").locator("[data-sample]")).to_have_count(2)
        expect(face).to_have_count(0)
        expect(page.locator(f'[data-unknown-face="{unknown_faces["biden.jpg"]}"]')).to_be_visible()
        expect(_card(page, "Barack").locator('[data-field="last-seen"]')).to_contain_text(
            CAMERA)

        # a second person, deleted through the confirm dialog
        page.get_by_label("Name of the new person").fill("Someone else")
        page.get_by_role("button", name="Add person").click()
        other = _card(page, "Someone else")
        other.get_by_text("Rename, merge, export, delete").click()
        other.get_by_role("button", name="Delete Someone else").click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_contain_text("The footage they appear in stays")
        dialog.get_by_role("button", name="Cancel").click()
        expect(dialog).to_be_hidden()
        other.get_by_role("button", name="Delete Someone else").click()
        page.get_by_role("dialog").get_by_role("button", name="Delete", exact=True).click()
        expect(page.get_by_role("alert").first).to_contain_text("Deleted Someone else")
        expect(_card(page, "Someone else")).to_have_count(0)
        assert console.csp_violations() == []
    finally:
        context.close()
    problems = []
    for look in LOOKS:
        for scheme in ("light", "dark"):
            shot_context, shot = _open(browser, system, signed_in, look, scheme,
                                       bypass_csp=True)
            try:
                shot.goto("/people/")
                expect(_card(shot, "Barack").locator("img.nvr-person-photo")).to_be_visible()
                assert horizontal_overflow(shot) <= 0
                shot.screenshot(path=screenshot_dir / f"people-{look}-{scheme}.png",
                                full_page=True)
                for summary in shot.locator("summary").all():  # the forms inside, too
                    summary.click()
                found = violations(shot)
                if found:
                    problems.append(f"{look} {scheme}:\n{describe(found)}")
            finally:
                shot_context.close()
    assert not problems, "\n".join(problems)


def test_the_timeline_marks_the_faces_seen(browser: Any, system: System,
                                           signed_in: Callable[[str], Path],
                                           unknown_faces: dict[str, int],
                                           screenshot_dir: Path) -> None:
    context, page = _open(browser, system, signed_in, "desktop", "light")
    try:
        sightings = page.request.get("/api/v1/events?type=face").json()
        assert {row["id"] for row in sightings} >= set(unknown_faces.values())
        page.goto(f"/timeline/?cameras={CAMERA}&at={sightings[0]['time']}")
        expect(page.locator("#nvr-tl")).to_have_attribute("data-loaded", re.compile(r"\d+"))
        answer = page.request.get(f"/api/v1/timeline?cameras={CAMERA}&start="
                                  f"{sightings[-1]['time']}")
        marks = answer.json()["cameras"][0]["faces"]
        assert {mark["id"] for mark in marks} >= set(unknown_faces.values())
        # hovering a dot names the face; the picture under it is the camera's
        canvas = page.locator("#nvr-tl-canvas")
        box = canvas.bounding_box()
        assert box is not None
        page.screenshot(path=screenshot_dir / "people-timeline-lane.png")
    finally:
        context.close()


def test_the_events_page_lists_faces_by_person_with_quick_ranges(
        browser: Any, system: System, signed_in: Callable[[str], Path],
        unknown_faces: dict[str, int], screenshot_dir: Path) -> None:
    context, page = _open(browser, system, signed_in, "desktop", "light")
    try:
        console = Console(page)
        page.goto("/events/")
        page.get_by_label("Type").select_option("face")
        page.get_by_label("Person").select_option("unknown")
        page.get_by_role("button", name="Today").click()
        expect(page).to_have_url(re.compile(r"type=face&person=unknown&start=\d{4}-\d\d-\d\dT00"
                                            r"%3A00"))  # local midnight
        rows = page.locator('tr[data-event="face"]')
        expect(rows.first).to_be_visible()
        ids = {int(row.get_attribute("data-event-id") or 0) for row in rows.all()}
        assert unknown_faces["biden.jpg"] in ids
        row = page.locator(f'tr[data-event-id="{unknown_faces["biden.jpg"]}"]')
        expect(row.locator('[data-field="person"]')).to_have_text("unknown")
        expect(row.locator("img.nvr-face-crop")).to_be_visible()
        wait_for(lambda: row.locator("img.nvr-face-crop").evaluate(
            "img => img.complete && img.naturalWidth > 0"), 15, "the face's crop")
        expect(row.locator('[data-field="play"]')).to_have_attribute("href",
                                                                      re.compile("/recordings/play"))
        page.screenshot(path=screenshot_dir / "people-events-faces.png")
        assert console.csp_violations() == []
    finally:
        context.close()
