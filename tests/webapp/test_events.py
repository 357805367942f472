"""The events page and API (alerts and outages), and the outages on the day timeline.

The seeding helpers at the top (alerts and outages written with the recorder's models) are
shared with test_alerting.py.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterator
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from nvrlib.catalog.models import Alert, Camera, CameraStatus, Outage
from webapp import catalog_queries
from webapp.extensions import db

from tests.support.postgres import postgres_cluster, postgres_unavailable_reason
from tests.support.requirements import require

from .helpers import Account, FakeClock
from .test_api_cameras import (  # noqa: F401  (app, as_admin, as_viewer: fixtures)
    add_camera, app, as_admin, as_viewer, logged_in, token_of,
)
from .test_recordings_support import CatalogWriter

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # the fake clock's start
REASONS = {
    "clean_shutdown": "edge shut down cleanly",
    "connection_lost": "connection lost",
    "stalled": "stalled (no data)",
    "failing": "ffmpeg failing",
    "disconnected": "disconnected by an admin",
    "disabled": "disabled",
    "hub_stopped": "hub stopped",
}

# -- shared helpers ----------------------------------------------------------------------------


def ago(**delta: float) -> dt.datetime:
    """Return the fake clock's start minus a timedelta's keyword arguments."""
    return NOW - dt.timedelta(**delta)


def add_alert(app: Flask, kind: str = "offline", camera: str | None = "porch",
              at: dt.datetime = NOW, *, status: str = "sent", subject: str = "",
              **fields: Any) -> int:
    """Store an alert as the hub would; return its id."""
    with app.app_context():
        alert = Alert(created_at=at, kind=kind, camera=camera,
                      subject=subject or f"[NVR] {kind} {camera or ''}".strip(),
                      status=status, **fields)
        db.session.add(alert)
        db.session.commit()
        return alert.id


def add_outage(app: Flask, camera: str, start: dt.datetime, end: dt.datetime | None,
               reason: str = "connection_lost", detail: str = "", **fields: float) -> int:
    """Store an outage of a camera (which must exist); ``end`` None: it is still going on."""
    with app.app_context():
        camera_id = db.session.scalar(select(Camera.id).where(Camera.name == camera))
        outage = Outage(camera_id=camera_id, started_at=start, ended_at=end, reason=reason,
                        detail=detail, **fields)
        db.session.add(outage)
        db.session.commit()
        return outage.id


def page_html(client: FlaskClient, url: str, status: int = 200) -> str:
    """GET a page, check its status, return its HTML."""
    response = client.get(url)
    assert response.status_code == status, response.get_data(as_text=True)[:2000]
    return response.get_data(as_text=True)


def rows(html: str) -> list[tuple[str, int]]:
    """The (alert|outage, id) of each row of the events table, in order."""
    return [(kind, int(number)) for kind, number in
            re.findall(r'<tr data-event="(\w+)" data-event-id="(\d+)"', html)]


def text(html: str) -> str:
    """The page's text with the tags out, the entities decoded and the spaces squeezed."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


@pytest.fixture
def seeded(app: Flask) -> dict[str, int]:
    """Two cameras, alerts of several kinds and outages, one of them still going on."""
    add_camera(app, "porch")
    add_camera(app, "yard")
    return {
        "porch_offline": add_alert(app, "offline", "porch", ago(hours=3), status="sent"),
        "porch_outage": add_outage(app, "porch", ago(hours=3), ago(hours=2, minutes=30)),
        "porch_online": add_alert(app, "online", "porch", ago(hours=2, minutes=30)),
        "yard_outage": add_outage(app, "yard", ago(hours=1), None, "stalled"),
        "yard_stalled": add_alert(app, "stalled", "yard", ago(minutes=59), status="pending"),
        "disk": add_alert(app, "disk_low", None, ago(minutes=10), status="logged"),
    }


# -- the page ----------------------------------------------------------------------------------

def test_events_list_alerts_and_outages_newest_first(as_viewer: FlaskClient,
                                                     seeded: dict[str, int]) -> None:
    html = page_html(as_viewer, "/events/")
    assert rows(html) == [
        ("alert", seeded["disk"]), ("alert", seeded["yard_stalled"]),
        ("outage", seeded["yard_outage"]), ("alert", seeded["porch_online"]),
        ("alert", seeded["porch_offline"]), ("outage", seeded["porch_outage"]),
    ]


def test_the_navbar_links_the_events_page_for_every_user(as_viewer: FlaskClient) -> None:
    assert 'href="/events/"' in page_html(as_viewer, "/")


def test_the_events_page_needs_a_login(app: Flask) -> None:
    response = app.test_client().get("/events/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/auth/login")


def test_filter_by_camera_keeps_its_alerts_and_outages(as_viewer: FlaskClient,
                                                       seeded: dict[str, int]) -> None:
    html = page_html(as_viewer, "/events/?camera=yard")
    assert rows(html) == [("alert", seeded["yard_stalled"]), ("outage", seeded["yard_outage"])]
    assert '<option value="yard" selected>' in html


def test_alerts_of_a_camera_no_longer_in_the_catalog_can_still_be_found(
        app: Flask, as_viewer: FlaskClient) -> None:
    gone = add_alert(app, "offline", "old-cam", ago(days=30))
    html = page_html(as_viewer, "/events/?camera=old-cam")
    assert rows(html) == [("alert", gone)]
    assert '<option value="old-cam" selected>' in html


@pytest.mark.parametrize(("kind", "expected"), [
    ("outage", ["porch_outage", "yard_outage"]),
    ("offline", ["porch_offline"]),
    ("disk_low", ["disk"]),
    ("test", []),
    ("all", ["disk", "yard_stalled", "yard_outage", "porch_online", "porch_offline",
             "porch_outage"]),
])
def test_filter_by_type(as_viewer: FlaskClient, seeded: dict[str, int], kind: str,
                        expected: list[str]) -> None:
    html = page_html(as_viewer, f"/events/?type={kind}")
    assert sorted(key for _, key in rows(html)) == sorted(seeded[name] for name in expected)
    if not expected:
        assert "No events match." in html


def test_a_time_range_keeps_alerts_raised_in_it_and_outages_overlapping_it(
        as_viewer: FlaskClient, seeded: dict[str, int]) -> None:
    # 10:40-11:30 UTC, asked in Paris time (UTC+1): the porch outage (9:00-9:30) is out,
    # the yard outage (since 11:00, still going on) and the yard alert (11:01) are in.
    html = page_html(as_viewer, "/events/?start=2026-03-01T11:40&end=2026-03-01T12:30"
                                "&tz=Europe/Paris")
    assert rows(html) == [("alert", seeded["yard_stalled"]), ("outage", seeded["yard_outage"])]
    # an outage that started before the range and ended in it counts too
    html = page_html(as_viewer, "/events/?start=2026-03-01T09:10:00Z&end=2026-03-01T09:20:00Z")
    assert rows(html) == [("outage", seeded["porch_outage"])]


def test_outages_show_start_end_duration_and_reason_in_words(as_viewer: FlaskClient,
                                                             seeded: dict[str, int]) -> None:
    html = page_html(as_viewer, "/events/?type=outage")
    words = text(html)
    assert "connection lost" in words and "stalled (no data)" in words
    assert "until 2026-03-01 09:30:00 UTC" in words and "30 min 0 s" in words
    assert "ongoing" in words and "1 h 0 min so far" in words  # yard: since 11:00, now 12:00
    assert '<time datetime="2026-03-01T09:00:00.000Z" data-local-time>' in html
    assert "/recordings/timeline/porch?at=2026-03-01T09:00:00.000Z" in html


def test_outages_say_what_the_edge_spool_recovered_and_dropped(app: Flask,
                                                               as_viewer: FlaskClient) -> None:
    add_camera(app, "porch")
    add_outage(app, "porch", ago(minutes=5), ago(minutes=1), backfilled_seconds=200.0,
               dropped_seconds=40.0)
    words = text(page_html(as_viewer, "/events/?type=outage"))
    assert "3 min 20 s back-filled from the edge's spool" in words
    assert "40.0 s lost (the edge's spool was full)" in words
    [outage] = as_viewer.get("/api/v1/events?type=outage").get_json()
    assert (outage["backfilled_seconds"], outage["dropped_seconds"]) == (200.0, 40.0)


@pytest.mark.parametrize(("reason", "words"), REASONS.items())
def test_every_outage_reason_reads_in_words(app: Flask, as_viewer: FlaskClient, reason: str,
                                            words: str) -> None:
    add_camera(app, "porch")
    add_outage(app, "porch", ago(minutes=5), ago(minutes=1), reason)
    html = page_html(as_viewer, "/events/")
    assert f'<strong data-field="reason" title="{reason}">{words}</strong>' in html


@pytest.mark.parametrize(("status", "badge"), [
    ("sent", "text-bg-success"), ("pending", "text-bg-primary"), ("failed", "text-bg-danger"),
    ("logged", "text-bg-secondary"), ("muted", "text-bg-dark"),
    ("suppressed", "text-bg-light"),
])
def test_each_delivery_status_has_its_badge(app: Flask, as_viewer: FlaskClient, status: str,
                                            badge: str) -> None:
    add_alert(app, "offline", "porch", ago(minutes=1), status=status)
    html = page_html(as_viewer, "/events/")
    assert re.search(rf'<span class="badge {badge}[^"]*" title="[^"]+" data-field="status">'
                     rf"{status}</span>", html)


def test_admins_see_attempts_and_the_last_error_viewers_do_not(
        app: Flask, as_admin: FlaskClient, as_viewer: FlaskClient) -> None:
    add_alert(app, "offline", "porch", ago(minutes=1), status="pending", attempts=3,
              last_error="SendGrid answered 500: <b>boom</b>")
    admin_html = page_html(as_admin, "/events/")
    assert "3 attempts" in admin_html
    assert "SendGrid answered 500: &lt;b&gt;boom&lt;/b&gt;" in admin_html
    viewer_html = page_html(as_viewer, "/events/")
    assert "attempts" not in viewer_html and "SendGrid answered" not in viewer_html


def test_alert_times_are_local_with_utc_in_the_markup(app: Flask,
                                                      as_viewer: FlaskClient) -> None:
    add_alert(app, "new_camera", "porch", dt.datetime(2026, 3, 1, 11, 58, 7, tzinfo=UTC),
              subject="[NVR] New camera porch")
    html = page_html(as_viewer, "/events/")
    # app.js writes the browser's local time into the element and the ISO UTC time in its title
    assert ('<time datetime="2026-03-01T11:58:07.000Z" data-local-time>'
            "2026-03-01 11:58:07 UTC</time>") in html
    assert "new camera" in html and "[NVR] New camera porch" in html


def test_subjects_and_camera_names_are_escaped(app: Flask, as_viewer: FlaskClient) -> None:
    add_alert(app, "offline", "<script>x</script>", subject='<img src=x onerror="alert(1)">')
    html = page_html(as_viewer, "/events/")
    assert "<script>x" not in html and "<img src=x" not in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html


def test_camera_secrets_an_older_hub_stored_are_masked_on_the_page_and_in_the_api(
        app: Flask, as_viewer: FlaskClient, seeded: dict[str, int]) -> None:
    url = "rtsp://admin:Pw-old-1@cam/s?password=Qs-old-2"
    add_alert(app, "failing", "porch", subject=f"porch failing ({url})", body=f"error: {url}",
              details=json.dumps({"last_error": url}), last_error=url)
    add_outage(app, "porch", ago(minutes=5), ago(minutes=4), detail=f"{url}: 401")
    for body in (page_html(as_viewer, "/events/"),
                 as_viewer.get("/api/v1/events").get_data(as_text=True)):
        assert "Pw-old-1" not in body and "Qs-old-2" not in body
        assert "rtsp://***@cam/s?password=***" in body


def test_events_are_paged_fifty_at_a_time_without_overlap(app: Flask,
                                                          as_viewer: FlaskClient) -> None:
    add_camera(app, "porch")
    for index in range(30):
        add_alert(app, "offline", "porch", ago(minutes=2 * index))
    for index in range(25):
        add_outage(app, "porch", ago(minutes=2 * index + 1), ago(minutes=2 * index + 0.5))
    first = page_html(as_viewer, "/events/?camera=porch")
    second = page_html(as_viewer, "/events/?camera=porch&page=2")
    assert len(rows(first)) == 50 and len(rows(second)) == 5
    assert not set(rows(first)) & set(rows(second))
    assert "/events/?camera=porch&amp;page=2" in first and "Next" in first
    assert "/events/?camera=porch&amp;page=1" in second


@pytest.mark.parametrize(("query", "message", "marked"), [
    ("type=bogus", "type: must be one of all, new_camera", "type"),
    ("start=yesterday", "start: not an ISO-8601 time", "start"),
    ("start=2026-03-01T12:00Z&end=2026-03-01T11:00Z", "end: must be after start", "end"),
    ("page=0", "page: must be between", None),
    ("page=abc", "page: not a whole number", None),
    ("tz=Mars/Olympus", "tz: unknown time zone", None),
    ("camera=" + "x" * 65, "camera: longer than a camera name", "camera"),
])
def test_bad_filters_answer_400_with_the_reason(as_viewer: FlaskClient, query: str,
                                                message: str, marked: str | None) -> None:
    html = page_html(as_viewer, f"/events/?{query}", status=400)
    assert message in html
    invalid = re.findall(r'class="form-\w+ is-invalid"[^>]*id="e-(\w+)"', html)
    assert invalid == ([marked] if marked else [])  # the form's field at fault is marked


# -- the API -----------------------------------------------------------------------------------

def test_api_lists_alerts_and_outages_with_iso_times(app: Flask, as_viewer: FlaskClient,
                                                     seeded: dict[str, int]) -> None:
    response = as_viewer.get("/api/v1/events?camera=porch")
    assert response.status_code == 200
    outage, online, offline = response.get_json()[-1], *response.get_json()[:2]
    assert online == {
        "type": "alert", "id": seeded["porch_online"], "time": "2026-03-01T09:30:00.000Z",
        "kind": "online", "camera": "porch", "subject": "[NVR] online porch", "body": "",
        "details": {}, "status": "sent", "sent_at": None,
    }
    assert offline["kind"] == "offline"
    assert outage == {
        "type": "outage", "id": seeded["porch_outage"], "time": "2026-03-01T09:00:00.000Z",
        "camera": "porch", "start": "2026-03-01T09:00:00.000Z",
        "end": "2026-03-01T09:30:00.000Z", "ongoing": False, "duration": 1800.0,
        "reason": "connection_lost", "reason_text": "connection lost", "detail": "",
        "backfilled_seconds": 0.0, "dropped_seconds": 0.0,
    }


def test_api_ongoing_outages_have_no_end_and_last_until_now(as_viewer: FlaskClient,
                                                            seeded: dict[str, int]) -> None:
    [outage] = as_viewer.get("/api/v1/events?type=outage&camera=yard").get_json()
    assert outage["end"] is None and outage["ongoing"] is True
    assert outage["duration"] == 3600.0 and outage["reason_text"] == "stalled (no data)"


def test_api_works_with_a_bearer_token_and_parses_details(app: Flask, viewer_user,
                                                          seeded: dict[str, int]) -> None:
    details = {"reason": "connection_lost", "peer": "192.0.2.7:50000",
               "since": "2026-03-01T11:59:00.000Z"}
    add_alert(app, "offline", "yard", ago(seconds=30), details=json.dumps(details))
    client = app.test_client()
    response = client.get("/api/v1/events?type=offline&camera=yard",
                          headers=token_of(app, viewer_user))
    assert response.status_code == 200
    [alert] = response.get_json()
    assert alert["details"] == details


def test_api_shows_delivery_internals_to_admins_only(app: Flask, as_admin: FlaskClient,
                                                     as_viewer: FlaskClient) -> None:
    add_alert(app, "offline", "porch", status="sent", attempts=2, last_error="timeout",
              recipients="a@example.com,b@example.org", sent_at=ago(seconds=5))
    [admin_view] = as_admin.get("/api/v1/events").get_json()
    assert admin_view["attempts"] == 2 and admin_view["last_error"] == "timeout"
    assert admin_view["recipients"] == ["a@example.com", "b@example.org"]
    assert admin_view["sent_at"] == "2026-03-01T11:59:55.000Z"
    [viewer_view] = as_viewer.get("/api/v1/events").get_json()
    assert not {"attempts", "last_error", "recipients", "requested_by"} & set(viewer_view)


def test_api_pages_with_a_link_header(app: Flask, as_viewer: FlaskClient) -> None:
    for index in range(5):
        add_alert(app, "offline", "porch", ago(minutes=index))
    first = as_viewer.get("/api/v1/events?limit=3")
    assert len(first.get_json()) == 3
    assert first.headers["Link"] == '</api/v1/events?limit=3&page=2>; rel="next"'
    second = as_viewer.get("/api/v1/events?limit=3&page=2")
    assert len(second.get_json()) == 2 and "Link" not in second.headers
    assert not {e["id"] for e in first.get_json()} & {e["id"] for e in second.get_json()}


@pytest.mark.parametrize(("query", "message"), [
    ("kind=offline", "kind: unknown parameter"),
    ("type=nope", "type: must be one of"),
    ("start=noon", "start: not an ISO-8601 time"),
    ("page=-1", "page: not a whole number"),
    ("limit=0", "limit: must be between 1 and 500"),
])
def test_api_bad_parameters_are_400_json(as_viewer: FlaskClient, query: str,
                                         message: str) -> None:
    response = as_viewer.get(f"/api/v1/events?{query}")
    assert response.status_code == 400
    assert response.get_json()["error"].startswith(message)


def test_api_needs_authentication(app: Flask) -> None:
    response = app.test_client().get("/api/v1/events")
    assert response.status_code == 401 and "error" in response.get_json()


# -- the day timeline --------------------------------------------------------------------------

def test_gaps_overlapping_outages_carry_their_reasons(app: Flask) -> None:
    writer = CatalogWriter(app)
    writer.segment("porch", ago(hours=2), 600)  # 10:00-10:10
    writer.segment("porch", ago(hours=1), 600)  # 11:00-11:10
    add_outage(app, "porch", ago(hours=1, minutes=50), ago(hours=1, minutes=1),
               "clean_shutdown")
    with app.app_context():
        day = catalog_queries.day_timeline("porch", NOW.date(), UTC, now=NOW)
    assert [(g.start, g.end, g.reasons) for g in day.gaps] == [
        (day.start, ago(hours=2), ()),
        (ago(hours=1, minutes=50), ago(hours=1), ("clean_shutdown",)),
        (ago(minutes=50), NOW, ()),
    ]
    assert day.gaps[1].label == "edge shut down cleanly"
    assert [(o.start, o.end, o.reason, o.ongoing) for o in day.outages] == [
        (ago(hours=1, minutes=50), ago(hours=1, minutes=1), "clean_shutdown", False)]


def test_an_ongoing_outage_runs_to_now_and_labels_the_last_gap(app: Flask) -> None:
    writer = CatalogWriter(app)
    writer.segment("porch", ago(hours=1), 600)
    add_outage(app, "porch", ago(minutes=50), None, "stalled", "no segment for 30 s")
    add_outage(app, "porch", ago(days=2), ago(days=1, hours=23), "hub_stopped")  # another day
    with app.app_context():
        day = catalog_queries.day_timeline("porch", NOW.date(), UTC, now=NOW)
    [outage] = day.outages
    assert (outage.start, outage.end, outage.ongoing) == (ago(minutes=50), NOW, True)
    assert day.gaps[-1].reasons == ("stalled",) and day.gaps[0].reasons == ()


def test_a_gap_overlapping_two_outages_names_both_reasons_once(app: Flask) -> None:
    writer = CatalogWriter(app)
    writer.segment("porch", ago(hours=1), 60)
    add_outage(app, "porch", ago(minutes=50), ago(minutes=40), "connection_lost")
    add_outage(app, "porch", ago(minutes=35), ago(minutes=30), "hub_stopped")
    add_outage(app, "porch", ago(minutes=20), ago(minutes=10), "connection_lost")
    with app.app_context():
        day = catalog_queries.day_timeline("porch", NOW.date(), UTC, now=NOW)
    assert day.gaps[-1].reasons == ("connection_lost", "hub_stopped")
    assert day.gaps[-1].label == "connection lost, hub stopped"


def test_the_timeline_page_draws_outages_apart_from_plain_gaps(app: Flask,
                                                               as_viewer: FlaskClient) -> None:
    writer = CatalogWriter(app)
    writer.segment("porch", ago(hours=2), 600)
    writer.segment("porch", ago(hours=1), 600)
    add_outage(app, "porch", ago(hours=1, minutes=50), ago(hours=1, minutes=1),
               "connection_lost", "edge 192.0.2.7 went silent")
    html = page_html(as_viewer, "/recordings/timeline/porch?day=2026-03-01&tz=UTC")
    svg = html.split("<svg", 1)[1].split("</svg>", 1)[0]
    assert svg.count('class="nvr-timeline-outage') == 1
    # 10:10 is 36600 s after midnight; 49 min long; the tooltip names the reason
    assert re.search(r'class="nvr-timeline-outage nvr-outage-connection_lost" x="36600.0" y="0" '
                     r'width="2940.0"', svg)
    assert ("<title>connection lost: 2026-03-01 10:10:00 UTC – 2026-03-01 10:59:00 UTC · "
            "edge 192.0.2.7 went silent</title>") in svg
    assert svg.count('class="nvr-timeline-covered"') == 2
    assert "style=" not in svg
    gaps = html.split(">Gaps<", 1)[1]
    assert gaps.count('data-gap-reasons="connection_lost"') == 1
    # the gap's badge names the reason; its title says when the outage was
    assert re.search(r'<span class="badge nvr-badge-outage text-wrap"\s+title="connection lost: '
                     r'2026-03-01 10:10:00 UTC – 2026-03-01 10:59:00 UTC">connection lost</span>',
                     gaps)
    assert "nvr-key-outage" in html  # the legend


def test_the_timeline_page_shows_an_ongoing_outage_up_to_now(app: Flask,
                                                             as_viewer: FlaskClient,
                                                             clock: FakeClock) -> None:
    writer = CatalogWriter(app)
    writer.segment("porch", ago(hours=1), 600)
    add_outage(app, "porch", ago(minutes=50), None, "failing")
    html = page_html(as_viewer, "/recordings/timeline/porch?day=2026-03-01&tz=UTC")
    assert "ffmpeg failing: 2026-03-01 11:10:00 UTC – now (ongoing)" in html
    # 11:10 to 12:00 (now): 3000 s, then the future
    assert re.search(r'nvr-outage-failing" x="40200.0" y="0" width="3000.0"', html)


def test_the_timeline_page_counts_the_segment_being_written_as_footage(
        app: Flask, as_viewer: FlaskClient, clock: FakeClock) -> None:
    writer = CatalogWriter(app)
    writer.segment("porch", ago(hours=1), 3590)  # ends 10 s ago; the next one is being written
    with app.app_context():
        db.session.add(CameraStatus(camera_id=writer.camera("porch"), state="recording",
                                    online=True, updated_at=NOW, last_segment_end=ago(seconds=10)))
        db.session.commit()
    html = page_html(as_viewer, "/recordings/timeline/porch?day=2026-03-01&tz=UTC")
    footage, gaps = html.split(">Footage<", 1)[1].split(">Gaps<", 1)
    # footage up to now, then the future: its last 10 s are no gap (as on /timeline/)
    assert 'datetime="2026-03-01T12:00:00.000Z"' in footage
    assert gaps.count('<li class="list-group-item') == 1  # only the night before 11:00
    assert 'datetime="2026-03-01T11:59:50.000Z"' not in gaps


# -- PostgreSQL --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pg_catalog() -> Iterator[str]:
    """A throwaway PostgreSQL cluster's database for the catalog."""
    require(postgres_unavailable_reason())
    with postgres_cluster("nvr_events") as url:
        yield url


def test_events_and_outage_gaps_work_on_postgresql(make_app: Callable[..., Flask],
                                                   tmp_path: Path, pg_catalog: str,
                                                   viewer_user: Account) -> None:
    app = make_app(SQLALCHEMY_DATABASE_URI=pg_catalog,
                   USERS_DB_URL=f"sqlite:///{tmp_path / 'users.db'}")
    add_camera(app, "porch")
    writer = CatalogWriter(app)
    writer.segment("porch", ago(hours=1), 600)
    alert = add_alert(app, "offline", "porch", ago(minutes=50), status="sent")
    outage = add_outage(app, "porch", ago(minutes=50), None, "connection_lost")
    client = logged_in(app, viewer_user)
    html = page_html(client, "/events/?camera=porch&start=2026-03-01T11:00:00Z")
    assert rows(html) == [("alert", alert), ("outage", outage)]
    events = client.get("/api/v1/events?type=outage").get_json()
    assert [(e["id"], e["ongoing"], e["duration"]) for e in events] == [(outage, True, 3000.0)]
    with app.app_context():
        day = catalog_queries.day_timeline("porch", NOW.date(), UTC, now=NOW)
    assert day.gaps[-1].reasons == ("connection_lost",)


@pytest.mark.parametrize("url", [
    "/events/?start=9999-12-31T23:59:59-14:00",
    "/events/?end=0001-01-01T00:00:00%2B14:00",
    "/recordings/timeline/porch?day=9999-12-31&tz=Pacific/Kiritimati",
    "/recordings/timeline/porch?day=0001-01-01&tz=Pacific/Kiritimati",
    "/recordings/timeline/porch?at=9999-12-31T23:00:00Z&tz=%2B14:00",
])
def test_times_at_the_ends_of_the_calendar_are_a_400_not_a_500(app: Flask,
                                                               as_viewer: FlaskClient,
                                                               url: str) -> None:
    add_camera(app, "porch")
    html = page_html(as_viewer, url, status=400)
    assert "out of range" in html
