"""The dashboard lists the catalog's cameras; the page frame works offline and on phones."""

from __future__ import annotations

import datetime as dt

import pytest

from flask import Flask
from flask.testing import FlaskClient

from nvrlib.catalog.models import Camera, CameraStatus, MotionEvent, Segment
from webapp.extensions import db

from .helpers import UTC, Account, AuthActions

T0 = dt.datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def add_camera(app: Flask, name: str, location: str, ends: list[dt.datetime]) -> None:
    """Put a camera and segments ending at ``ends`` into the catalog."""
    with app.app_context():
        camera = Camera(name=name, location=location)
        db.session.add(camera)
        db.session.flush()
        for i, end in enumerate(ends):
            db.session.add(Segment(camera_id=camera.id, start_time=end - dt.timedelta(seconds=10),
                                   end_time=end, duration=10.0, size_bytes=1, seq=i,
                                   path=f"{name}/{i}.ts"))
        db.session.commit()


def test_dashboard_lists_cameras_with_their_last_segment_end(
        app: Flask, client: FlaskClient, auth: AuthActions, viewer_user: Account) -> None:
    add_camera(app, "porch", "front door", [T0, T0 + dt.timedelta(hours=2, seconds=7)])
    add_camera(app, "yard", "", [])
    auth.login(viewer_user)
    page = client.get("/").get_data(as_text=True)
    assert "porch" in page and "front door" in page
    assert 'datetime="2026-03-01T12:00:07+00:00"' in page
    assert "2026-03-01 12:00:07 UTC" in page
    assert "yard" in page and "never" in page


def test_each_card_shows_the_newest_picture_the_state_and_the_last_motion(
        app: Flask, client: FlaskClient, auth: AuthActions, viewer_user: Account) -> None:
    add_camera(app, "porch", "", [T0, T0 + dt.timedelta(seconds=10)])
    add_camera(app, "yard", "", [])
    with app.app_context():
        porch = db.session.scalar(db.select(Camera).where(Camera.name == "porch"))
        newest = db.session.scalar(db.select(Segment.id).where(Segment.end_time == T0 + dt.timedelta(seconds=10)))
        db.session.add(CameraStatus(camera_id=porch.id, state="running", online=True,
                                    updated_at=dt.datetime.now(UTC)))
        db.session.add(MotionEvent(camera_id=porch.id, event_key="e1", start_time=T0,
                                   end_time=T0 + dt.timedelta(seconds=4), score=0.2))
        db.session.commit()
    auth.login(viewer_user)
    page = client.get("/").get_data(as_text=True)
    porch_card, yard_card = page.split('data-camera-card="yard"')
    assert f'src="/recordings/{newest}/thumbnail.jpg"' in porch_card
    assert ">recording</span>" in porch_card and 'datetime="2026-03-01T10:00:00+00:00"' in porch_card
    assert "No picture yet" in yard_card and ">offline</span>" in yard_card
    assert "none seen yet" in yard_card
    assert 'href="/live/yard"' in yard_card and 'href="/recordings/timeline/yard"' in yard_card


def test_dashboard_says_so_when_there_are_no_cameras(client: FlaskClient, auth: AuthActions,
                                                     viewer_user: Account) -> None:
    auth.login(viewer_user)
    assert "No camera has recorded yet" in client.get("/").get_data(as_text=True)


def test_camera_names_are_escaped(app: Flask, client: FlaskClient, auth: AuthActions,
                                  viewer_user: Account) -> None:
    add_camera(app, "<img src=x onerror=alert(1)>", "<b>loc</b>", [T0])
    auth.login(viewer_user)
    page = client.get("/").get_data(as_text=True)
    assert "<img src=x" not in page and "<b>loc</b>" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_bootstrap_and_hls_are_served_locally(client: FlaskClient) -> None:
    page = client.get("/auth/login").get_data(as_text=True)
    assert "http://" not in page and "https://" not in page  # no CDN
    for path in ("/static/vendor/bootstrap/bootstrap.min.css",
                 "/static/vendor/bootstrap/bootstrap.bundle.min.js",
                 "/static/vendor/hls/hls.min.js", "/static/js/app.js", "/static/js/theme.js",
                 "/static/css/app.css"):
        with client.get(path) as response:
            assert response.status_code == 200, path
            assert path.rsplit("/", 1)[-1] in page or "hls" in path or response.content_length


@pytest.mark.parametrize("path", ["/static/vendor/../../webapp/config.py",
                                  "/static/vendor/%2e%2e/%2e%2e/README.md",
                                  "/static/vendor/nothing.js"])
def test_vendored_files_never_leave_their_folder(client: FlaskClient, path: str) -> None:
    assert client.get(path).status_code == 404


def test_page_frame_is_responsive_and_themable(client: FlaskClient, auth: AuthActions,
                                               viewer_user: Account) -> None:
    auth.login(viewer_user)
    page = client.get("/").get_data(as_text=True)
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert "navbar-expand-md" in page and "navbar-toggler" in page
    assert "data-theme-toggle" in page and 'data-bs-theme="light"' in page
    assert 'action="/auth/logout"' in page
