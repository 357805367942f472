"""Pages of the timeline blueprint, and the Recordings page's "what happened" first view."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

import datetime as dt

from nvrlib.catalog.models import CameraStatus, MotionEvent
from webapp.catalog_queries import iso_utc as iso
from webapp.extensions import db

from .test_recordings_support import (  # noqa: F401  (fixtures)
    CatalogWriter, at, catalog, clips, viewer_client,
)


def test_recordings_page_shows_footage_spans_and_motion_not_files(
        app: Flask, viewer_client: FlaskClient, catalog: CatalogWriter, clips: list[Path]) -> None:
    catalog.footage(clips)  # three 2-s files that tile: one span
    catalog.segment("porch", at(60), 10.0)
    snapshot = Path(app.config["STORAGE_ROOT"]) / "porch" / "motion" / "e1.jpg"
    snapshot.parent.mkdir(parents=True)
    snapshot.write_bytes(b"\xff\xd8\xff\xd9")
    with app.app_context():
        camera_id = catalog.camera("porch")
        db.session.add(MotionEvent(camera_id=camera_id, event_key="e1", start_time=at(1),
                                   end_time=at(4), score=0.25,
                                   snapshot_path="porch/motion/e1.jpg"))
        db.session.commit()
        event_id = db.session.query(MotionEvent.id).scalar()
    html = viewer_client.get(f"/recordings/?start={iso(at(-60))}&end={iso(at(120))}"
                             ).get_data(as_text=True)
    assert html.count("data-span>") == 2  # two spans, not four files
    assert "6.0 s" in html and "10.0 s" in html
    assert f'src="/api/v1/events/motion/{event_id}/snapshot.jpg"' in html
    assert "25.0 % of the picture moved" in html
    assert "view=files" in html  # the raw files are one click away
    picture = viewer_client.get(f"/api/v1/events/motion/{event_id}/snapshot.jpg", buffered=True)
    assert picture.status_code == 200 and picture.mimetype == "image/jpeg"
    picture.close()


def test_recordings_page_says_a_motion_events_end_was_not_reported(
        app: Flask, viewer_client: FlaskClient, catalog: CatalogWriter) -> None:
    catalog.segment("porch", at(-5 * 3600), 10.0)
    with app.app_context():
        camera_id = catalog.camera("porch")  # now is 12:00: 05:00 is 7 h ago, 11:00 one hour
        db.session.add_all([
            MotionEvent(camera_id=camera_id, event_key="lost", start_time=at(-5 * 3600),
                        end_time=None, score=0.0),  # its edge died mid-event
            MotionEvent(camera_id=camera_id, event_key="going", start_time=at(3600),
                        end_time=None, score=0.0)])  # the peak comes with the end report
        db.session.commit()
    html = viewer_client.get(f"/recordings/?start={iso(at(-6 * 3600))}&end={iso(at(7200))}"
                             ).get_data(as_text=True)
    assert html.count("end not reported") == 1 and html.count("going on") == 1
    assert "of the picture moved" not in html  # no "0.0 %" before (or without) the peak


def test_motion_in_the_segment_being_written_says_its_picture_comes_later(
        app: Flask, viewer_client: FlaskClient, catalog: CatalogWriter) -> None:
    now = app.config["CLOCK"]()
    catalog.segment("porch", now - dt.timedelta(seconds=60), 50.0)  # the next one is being written
    with app.app_context():
        camera_id = catalog.camera("porch")
        db.session.add_all([
            CameraStatus(camera_id=camera_id, state="recording", online=True, updated_at=now,
                         last_segment_end=now - dt.timedelta(seconds=10)),
            MotionEvent(camera_id=camera_id, event_key="saved", score=0.1,
                        start_time=now - dt.timedelta(seconds=30),
                        end_time=now - dt.timedelta(seconds=25)),
            MotionEvent(camera_id=camera_id, event_key="open", score=0.0,
                        start_time=now - dt.timedelta(seconds=4), end_time=None)])
        db.session.commit()
    html = viewer_client.get(f"/recordings/?start={iso(now - dt.timedelta(minutes=5))}"
                             f"&end={iso(now)}").get_data(as_text=True)
    # the one in a saved segment has its picture; the one still being recorded asks for none
    # (it would be a 404 until the hub saves the segment)
    assert html.count("/picture.jpg?at=") == 2  # the saved event's and the footage span's
    assert html.count("data-thumb-pending") == 1 and ">being recorded</span>" in html
    assert 'aria-label="porch at 2026-03-01 11:59:56 UTC: the picture comes' in html


def test_a_file_filter_still_lists_files(viewer_client: FlaskClient,
                                         catalog: CatalogWriter) -> None:
    catalog.segment("porch", at(0), 10.0)
    for query in ("min_duration=5", "motion=true"):
        html = viewer_client.get(f"/recordings/?{query}").get_data(as_text=True)
        assert "data-span>" not in html and "Min. length" in html


def test_recordings_range_errors_name_the_parameter(viewer_client: FlaskClient) -> None:
    response = viewer_client.get(f"/recordings/?start={iso(at(0))}&end={iso(at(-1))}")
    assert response.status_code == 400
    assert "end: must be after start" in response.get_data(as_text=True)


def test_timeline_page_and_the_picture_of_a_moment(
        viewer_client: FlaskClient, catalog: CatalogWriter, clips: list[Path]) -> None:
    segments = catalog.footage(clips)
    page = viewer_client.get(f"/timeline/?cameras=porch&at={iso(at(3))}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'id="nvr-tl-canvas"' in html
    assert 'data-playlist="/api/v1/playback/CAMERA.m3u8"' in html
    moment = viewer_client.get(f"/timeline/porch/picture.jpg?at={iso(at(3))}")
    assert moment.status_code == 302
    assert moment.headers["Location"] == f"/recordings/{segments[1].id}/thumbnail.jpg"
    # Just before the footage starts (a time cut to the millisecond): its first picture
    early = viewer_client.get(f"/timeline/porch/picture.jpg?at={iso(at(-0.0005))}")
    assert early.headers["Location"] == f"/recordings/{segments[0].id}/thumbnail.jpg"
    assert viewer_client.get(f"/timeline/porch/picture.jpg?at={iso(at(30))}").status_code == 404
    assert viewer_client.get("/timeline/porch/picture.jpg").status_code == 400
    assert viewer_client.get("/timeline/?cameras=nope").status_code == 404
    assert viewer_client.get(f"/timeline/?at={iso(at(0))[:4]}x").status_code == 400


def test_a_new_system_opens_the_timeline_on_the_footage_it_has(
        viewer_client: FlaskClient, catalog: CatalogWriter) -> None:
    def first() -> str:
        html = viewer_client.get("/timeline/").get_data(as_text=True)
        return html.split('data-first="', 1)[1].split('"', 1)[0]

    catalog.segment("porch", at(110 * 60), 10)  # 10 minutes before the clock's now
    assert first() == iso(at(110 * 60))  # the script opens on it, not on an empty hour
    catalog.segment("porch", at(0), 10)  # older footage: the last hour is worth showing
    assert first() == ""
