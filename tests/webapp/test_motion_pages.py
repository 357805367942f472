"""Motion on the pages: the events page lists motion events with their snapshot and a play link;
a camera's motion settings page and the motion alerts card of Alert settings (admins only)."""

from __future__ import annotations

import datetime as dt
import json

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from nvrlib.catalog.models import Setting
from webapp.extensions import db

from .helpers import FakeClock
from .test_api_cameras import (  # noqa: F401  (app, as_admin, as_viewer: fixtures)
    add_camera, app, as_admin, as_viewer, camera_row,
)
from .test_events import add_alert, page_html, rows, text
from .test_motion_api import add_motion
from .test_recordings_support import T0

MASK = [[[0.1, 0.1], [0.4, 0.1], [0.4, 0.3]]]


# -- the events page -----------------------------------------------------------------------------

def test_the_events_page_shows_motion_with_its_snapshot_and_a_play_link(
        app: Flask, as_viewer: FlaskClient) -> None:
    event_id = add_motion(app, "porch", T0, 12.0, score=0.083, snapshot="porch/motion/1.jpg")
    add_alert(app, "offline", "porch", T0 - dt.timedelta(minutes=1))
    html = page_html(as_viewer, "/events/")
    assert [kind for kind, _ in rows(html)] == ["motion", "alert"]
    assert f'src="/api/v1/events/motion/{event_id}/snapshot.jpg"' in html
    assert 'href="/recordings/play?camera=porch&amp;start=2026-03-01T09:59:58.000Z"' in html
    assert "8.3 % of the picture moved" in text(html) and "(12.0 s)" in text(html)
    only_motion = page_html(as_viewer, "/events/?type=motion")
    assert [kind for kind, _ in rows(only_motion)] == ["motion"]
    only_alerts = page_html(as_viewer, "/events/?type=alert")
    assert [kind for kind, _ in rows(only_alerts)] == ["alert"]


def test_the_events_page_says_when_an_events_end_was_never_reported(
        app: Flask, as_viewer: FlaskClient) -> None:
    now = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc)  # the fake clock's
    # the start reports only: the peak (score) comes with the end report
    add_motion(app, "porch", now - dt.timedelta(minutes=30), None, score=0.0)
    add_motion(app, "yard", now - dt.timedelta(hours=7), None, score=0.0)  # its edge died
    html = page_html(as_viewer, "/events/?type=motion")
    words = [text(row) for row in html.split('<tr data-event="motion"')[1:]]  # newest first
    assert len(words) == 2
    assert "ongoing" in words[0] and "30 min 0 s so far" in words[0]
    assert "end not reported" in words[1] and "ongoing" not in words[1]
    assert "so far" not in words[1]
    assert not any("of the picture moved" in row for row in words)  # not "0.0 %"


# -- a camera's motion settings page -------------------------------------------------------------

def test_an_admin_saves_motion_settings_on_the_page(app: Flask, as_admin: FlaskClient,
                                                    clock: FakeClock) -> None:
    add_camera(app, "porch")
    html = page_html(as_admin, "/admin/cameras/porch/motion")
    assert "data-mask-canvas" in html and 'name="sensitivity"' in html
    assert 'href="/admin/cameras/porch/motion"' in page_html(as_admin, "/admin/")
    answer = as_admin.post("/admin/cameras/porch/motion", data={
        "enabled": "on", "sensitivity": "72", "alerts": "on", "mask": json.dumps(MASK),
        "armed_hours": "22:00-06:00"})
    assert answer.status_code == 302
    row = camera_row(app, "porch")
    assert (row.motion_enabled, row.motion_sensitivity, row.motion_alerts) == (True, 72, True)
    assert json.loads(row.motion_mask) == MASK and row.motion_updated_at == clock.now
    with app.app_context():
        assert db.session.get(Setting, "motion.armed_hours.porch").value == "22:00-06:00"
    assert "Saved the motion settings of porch" in page_html(as_admin,
                                                             "/admin/cameras/porch/motion")


def test_a_bad_mask_or_sensitivity_is_400_keeps_what_was_sent_and_saves_nothing(
        app: Flask, as_admin: FlaskClient) -> None:
    add_camera(app, "porch")
    for data, field in (({"sensitivity": "50", "mask": "[[[0, 0], [2, 0], [0, 1]]]"}, "mask"),
                        ({"sensitivity": "500", "mask": "[]"}, "sensitivity"),
                        ({"sensitivity": "50", "mask": "not json"}, "mask"),
                        ({"sensitivity": "50", "mask": "[]", "armed_hours": "nightly"},
                         "camera_hours.porch")):
        answer = as_admin.post("/admin/cameras/porch/motion", data=data)
        html = answer.get_data(as_text=True)
        assert answer.status_code == 400 and f"{field}:" in text(html), field
        assert data["sensitivity"] in html  # shown again as sent
    row = camera_row(app, "porch")
    assert (row.motion_sensitivity, row.motion_mask, row.motion_updated_at) == (50, "[]", None)


def test_viewers_cannot_open_or_post_the_motion_pages(app: Flask, as_viewer: FlaskClient) -> None:
    add_camera(app, "porch")
    assert as_viewer.get("/admin/cameras/porch/motion").status_code == 403
    assert as_viewer.post("/admin/cameras/porch/motion",
                          data={"sensitivity": "90", "mask": "[]"}).status_code == 403
    assert as_viewer.post("/admin/alerts/motion", data={"away": "on"}).status_code == 403
    assert camera_row(app, "porch").motion_sensitivity == 50


def test_unknown_camera_is_404(as_admin: FlaskClient) -> None:
    assert as_admin.get("/admin/cameras/nowhere/motion").status_code == 404


# -- the motion alerts card of Alert settings ----------------------------------------------------

def test_the_away_switch_and_armed_hours_on_alert_settings(app: Flask,
                                                           as_admin: FlaskClient) -> None:
    answer = as_admin.post("/admin/alerts/motion", data={
        "away": "on", "armed_hours": "22:00-06:00", "timezone": "Europe/Paris"})
    assert answer.status_code == 302
    html = page_html(as_admin, "/admin/alerts/")
    assert "Motion alerts are armed around the clock (away)" in text(html)
    assert 'id="m-away" name="away" checked' in html
    refused = as_admin.post("/admin/alerts/motion", data={"armed_hours": "at night",
                                                          "timezone": "Europe/Paris"})
    assert refused.status_code == 400 and "armed_hours:" in text(refused.get_data(as_text=True))
    assert "at night" in refused.get_data(as_text=True)
    as_admin.post("/admin/alerts/motion", data={"armed_hours": "", "timezone": ""})
    with app.app_context():
        assert {s.key for s in db.session.scalars(select(Setting))} == set()
