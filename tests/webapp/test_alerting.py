"""The alert settings page and API (admins): email state, addresses, mutes and test emails."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from nvrlib.catalog.models import Alert, Camera, HubStatus, Setting
from webapp.extensions import db

from .helpers import Account, FakeClock, csrf_token_of
from .test_api_cameras import (  # noqa: F401  (app, as_admin, as_viewer: fixtures)
    add_camera, app, as_admin, as_viewer, logged_in, token_of,
)
from .test_events import page_html, text

UTC = dt.timezone.utc
PAGE = "/admin/alerts/"


def publish_hub_status(app: Flask, heartbeat: dt.datetime, email_enabled: bool = True,
                       source: str = "config", recipients: str = "owner@example.com") -> None:
    """Write the hub's status row as the hub publishes it with each heartbeat."""
    with app.app_context():
        db.session.merge(HubStatus(id=1, pid=4242, started_at=heartbeat, heartbeat_at=heartbeat,
                                   email_enabled=email_enabled, recipients_source=source,
                                   recipients=recipients))
        db.session.commit()


def setting(app: Flask) -> Setting | None:
    """The stored alert addresses, if any."""
    with app.app_context():
        row = db.session.get(Setting, "alerts.email_to")
        if row is not None:
            db.session.expunge(row)
        return row


def muted_until(app: Flask, camera: str) -> dt.datetime | None:
    """A camera's alerts_muted_until."""
    with app.app_context():
        return db.session.scalar(select(Camera.alerts_muted_until).where(Camera.name == camera))


def alerts(app: Flask) -> list[Alert]:
    """Every alert row, oldest first."""
    with app.app_context():
        found = list(db.session.scalars(select(Alert).order_by(Alert.id)))
        for row in found:
            db.session.expunge(row)
        return found


# -- who may use it ----------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "url"), [
    ("get", PAGE), ("post", PAGE + "recipients"), ("post", PAGE + "mute"),
    ("post", PAGE + "unmute/porch"), ("post", PAGE + "test"),
])
def test_viewers_get_403_and_change_nothing(app: Flask, as_viewer: FlaskClient, method: str,
                                            url: str) -> None:
    add_camera(app, "porch")
    data = {"addresses": "a@example.com", "camera": "porch", "length": "1h"}
    response = getattr(as_viewer, method)(url, data=data)
    assert response.status_code == 403
    assert setting(app) is None and alerts(app) == [] and muted_until(app, "porch") is None


def test_anonymous_visitors_are_sent_to_the_login_page(app: Flask) -> None:
    response = app.test_client().get(PAGE)
    assert response.status_code == 302 and response.headers["Location"].startswith("/auth/login")


def test_the_admin_panel_and_the_events_page_link_the_settings(as_admin: FlaskClient,
                                                               as_viewer: FlaskClient) -> None:
    assert f'href="{PAGE}"' in page_html(as_admin, "/admin/")
    assert f'href="{PAGE}"' in page_html(as_admin, "/events/")
    assert f'href="{PAGE}"' not in page_html(as_viewer, "/events/")


@pytest.mark.parametrize("url", [PAGE + "recipients", PAGE + "mute", PAGE + "test",
                                 PAGE + "unmute/porch"])
def test_every_form_needs_the_csrf_token(make_app: Callable[..., Flask], admin_user: Account,
                                         url: str) -> None:
    app = make_app(WTF_CSRF_ENABLED=True)
    add_camera(app, "porch")
    client = logged_in(app, admin_user)
    data = {"addresses": "a@example.com", "camera": "porch", "length": "1h"}
    assert client.post(url, data=data).status_code == 400
    assert setting(app) is None and alerts(app) == [] and muted_until(app, "porch") is None
    token = csrf_token_of(client.get(PAGE))
    assert client.post(url, data={**data, "csrf_token": token}).status_code == 302


# -- the email state ---------------------------------------------------------------------------

def test_without_a_hub_status_the_page_says_the_hub_is_not_running(as_admin: FlaskClient) -> None:
    html = page_html(as_admin, PAGE)
    assert 'data-hub-state="not-running"' in html and "never reported" in html
    assert "email off" in html


def test_a_heartbeat_older_than_30_s_means_the_hub_is_not_running(
        app: Flask, as_admin: FlaskClient, clock: FakeClock) -> None:
    publish_hub_status(app, clock.now - dt.timedelta(seconds=31))
    html = page_html(as_admin, PAGE)
    assert "Hub not running" in text(html) and "more than 30 s ago" in text(html)
    publish_hub_status(app, clock.now - dt.timedelta(seconds=5))
    assert "Hub not running" not in text(page_html(as_admin, PAGE))


def test_the_page_shows_email_on_and_where_the_recipients_come_from(
        app: Flask, as_admin: FlaskClient, clock: FakeClock) -> None:
    publish_hub_status(app, clock.now, recipients="owner@example.com,ops@example.org")
    words = text(page_html(as_admin, PAGE))
    assert "email on" in words and "The hub emails alerts through SendGrid" in words
    assert "owner@example.com, ops@example.org" in words
    assert "From the hub's config file" in words


def test_email_off_says_alerts_are_only_logged(app: Flask, as_admin: FlaskClient,
                                               clock: FakeClock) -> None:
    publish_hub_status(app, clock.now, email_enabled=False, source="none", recipients="")
    words = text(page_html(as_admin, PAGE))
    assert "email off" in words and "not emailed" in words and "From nowhere" in words


def test_the_environment_overriding_the_addresses_is_shown(app: Flask, as_admin: FlaskClient,
                                                           clock: FakeClock) -> None:
    publish_hub_status(app, clock.now, source="environment", recipients="env@example.com")
    html = page_html(as_admin, PAGE)
    assert 'data-field="env-override"' in html
    assert "ALERT_EMAIL_TO in the hub's environment overrides" in text(html)


# -- the addresses -----------------------------------------------------------------------------

def test_saving_addresses_stores_them_comma_separated(app: Flask, as_admin: FlaskClient,
                                                      admin_user: Account,
                                                      clock: FakeClock) -> None:
    response = as_admin.post(PAGE + "recipients",
                             data={"addresses": " owner@example.com,ops@example.org ; "
                                                "owner@example.com "})
    assert response.status_code == 302 and response.headers["Location"] == PAGE
    row = setting(app)
    assert row is not None and row.value == "owner@example.com,ops@example.org"
    assert row.updated_by == admin_user.username and row.updated_at == clock.now
    html = page_html(as_admin, PAGE)
    assert "Alert addresses saved: owner@example.com, ops@example.org." in html
    assert 'value="owner@example.com, ops@example.org"' in html


def test_saving_with_the_environment_overriding_warns(app: Flask, as_admin: FlaskClient,
                                                      clock: FakeClock) -> None:
    publish_hub_status(app, clock.now, source="environment", recipients="env@example.com")
    as_admin.post(PAGE + "recipients", data={"addresses": "a@example.com"})
    assert "overrides these addresses" in page_html(as_admin, PAGE)


@pytest.mark.parametrize("bad", ["not-an-address", "a@example.com, bob@localhost",
                                 "Bob <bob@example.com>",
                                 ",".join(f"user{n}@example.com" for n in range(51))])
def test_a_bad_address_is_a_form_error_and_nothing_is_stored(app: Flask, as_admin: FlaskClient,
                                                             bad: str) -> None:
    response = as_admin.post(PAGE + "recipients", data={"addresses": bad})
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert 'class="invalid-feedback"' in html
    assert re.search(r"is not an email address|at most 50 addresses", html)
    assert setting(app) is None


def test_an_empty_list_hands_the_addresses_back_to_the_config(app: Flask,
                                                             as_admin: FlaskClient) -> None:
    as_admin.post(PAGE + "recipients", data={"addresses": "a@example.com"})
    assert setting(app) is not None
    as_admin.post(PAGE + "recipients", data={"addresses": "  "})
    assert setting(app) is None
    assert "the hub uses the addresses of its config file" in page_html(as_admin, PAGE)


# -- mutes -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("length", "delta"), [
    ("1h", dt.timedelta(hours=1)), ("8h", dt.timedelta(hours=8)),
    ("24h", dt.timedelta(hours=24)), ("7d", dt.timedelta(days=7)),
])
def test_muting_a_camera_sets_its_mute_end(app: Flask, as_admin: FlaskClient, clock: FakeClock,
                                           length: str, delta: dt.timedelta) -> None:
    add_camera(app, "porch")
    add_camera(app, "yard")
    response = as_admin.post(PAGE + "mute", data={"camera": "porch", "length": length})
    assert response.status_code == 302
    assert muted_until(app, "porch") == clock.now + delta and muted_until(app, "yard") is None
    html = page_html(as_admin, PAGE)
    assert 'data-muted-camera="porch"' in html and 'data-muted-camera="yard"' not in html
    assert "Alerts of porch muted until" in html


def test_unmuting_and_expired_mutes_leave_the_list(app: Flask, as_admin: FlaskClient,
                                                   clock: FakeClock) -> None:
    add_camera(app, "porch")
    add_camera(app, "yard")
    as_admin.post(PAGE + "mute", data={"camera": "porch", "length": "8h"})
    as_admin.post(PAGE + "mute", data={"camera": "yard", "length": "1h"})
    as_admin.post(PAGE + "unmute/porch")
    assert muted_until(app, "porch") is None
    html = page_html(as_admin, PAGE)
    assert 'data-muted-camera="porch"' not in html and 'data-muted-camera="yard"' in html
    clock.advance(hours=1, seconds=1)
    assert "No camera is muted." in page_html(as_admin, PAGE)


@pytest.mark.parametrize("data", [{"camera": "porch", "length": "2h"},
                                  {"camera": "nobody", "length": "1h"},
                                  {"length": "1h"}])
def test_a_bad_mute_is_a_form_error(app: Flask, as_admin: FlaskClient,
                                    data: dict[str, str]) -> None:
    add_camera(app, "porch")
    response = as_admin.post(PAGE + "mute", data=data)
    assert response.status_code == 400
    assert 'class="invalid-feedback"' in response.get_data(as_text=True)
    assert muted_until(app, "porch") is None


def test_unmuting_an_unknown_camera_is_404(as_admin: FlaskClient) -> None:
    assert as_admin.post(PAGE + "unmute/nobody").status_code == 404


# -- the test email ----------------------------------------------------------------------------

def test_send_test_email_queues_a_pending_alert_for_the_hub(app: Flask, as_admin: FlaskClient,
                                                            admin_user: Account,
                                                            clock: FakeClock) -> None:
    publish_hub_status(app, clock.now)
    response = as_admin.post(PAGE + "test")
    assert response.status_code == 302
    [alert] = alerts(app)
    assert (alert.kind, alert.status, alert.camera, alert.subject) == (
        "test", "pending", None, "[NVR] Test email")
    assert alert.requested_by == admin_user.username
    assert json.loads(alert.details) == {"requested_by": admin_user.username}
    assert admin_user.username in alert.body and "2026-03-01 12:00:00 UTC" in alert.body
    assert alert.created_at == clock.now and alert.next_attempt_at == clock.now
    html = page_html(as_admin, PAGE)
    assert "Test email queued: the hub sends it within seconds." in html
    assert re.search(r'data-field="test-status">pending</span>', html)


def test_the_page_shows_the_latest_test_emails_delivery(app: Flask, as_admin: FlaskClient,
                                                        clock: FakeClock) -> None:
    as_admin.post(PAGE + "test")
    with app.app_context():
        alert = db.session.scalar(select(Alert))
        alert.status, alert.attempts, alert.sent_at = "sent", 1, clock.now
        alert.recipients = "owner@example.com"
        db.session.commit()
    html = page_html(as_admin, PAGE)
    assert re.search(r'data-field="test-status">sent</span>', html)
    assert "owner@example.com" in html and "1 attempt<" in html


def test_a_test_email_without_a_running_hub_says_when_it_will_go(as_admin: FlaskClient) -> None:
    as_admin.post(PAGE + "test")
    assert "the hub is not running" in page_html(as_admin, PAGE)


def test_test_emails_appear_on_the_events_page(app: Flask, as_admin: FlaskClient) -> None:
    as_admin.post(PAGE + "test")
    html = page_html(as_admin, "/events/?type=test")
    assert "[NVR] Test email" in html and "test email" in html


# -- the API -----------------------------------------------------------------------------------

def test_api_settings_report_email_addresses_and_mutes(app: Flask, as_admin: FlaskClient,
                                                       clock: FakeClock) -> None:
    add_camera(app, "porch")
    publish_hub_status(app, clock.now, source="web", recipients="a@example.com")
    as_admin.post(PAGE + "recipients", data={"addresses": "a@example.com"})
    as_admin.post(PAGE + "mute", data={"camera": "porch", "length": "8h"})
    assert as_admin.get("/api/v1/alerts/settings").get_json() == {
        "hub_running": True, "heartbeat_at": "2026-03-01T12:00:00.000Z", "email_enabled": True,
        "recipients": ["a@example.com"], "recipients_source": "web",
        "web_addresses": ["a@example.com"],
        "mutes": [{"camera": "porch", "until": "2026-03-01T20:00:00.000Z"}],
    }


def test_api_sets_the_addresses(app: Flask, as_admin: FlaskClient) -> None:
    response = as_admin.put("/api/v1/alerts/addresses",
                            json={"addresses": ["a@example.com", "b@example.org"]})
    assert response.status_code == 200
    assert response.get_json()["web_addresses"] == ["a@example.com", "b@example.org"]
    bad = as_admin.put("/api/v1/alerts/addresses", json={"addresses": ["nope"]})
    assert bad.status_code == 400 and "is not an email address" in bad.get_json()["error"]
    assert as_admin.put("/api/v1/alerts/addresses", json={"addresses": "a@example.com"}
                        ).status_code == 400
    assert setting(app).value == "a@example.com,b@example.org"


def test_api_mutes_and_unmutes_a_camera(app: Flask, as_admin: FlaskClient,
                                        clock: FakeClock) -> None:
    add_camera(app, "porch")
    response = as_admin.post("/api/v1/alerts/mute", json={"camera": "porch", "hours": 8})
    assert response.status_code == 200
    assert response.get_json() == {"camera": "porch", "muted_until": "2026-03-01T20:00:00.000Z"}
    assert muted_until(app, "porch") == clock.now + dt.timedelta(hours=8)
    response = as_admin.post("/api/v1/alerts/mute", json={"camera": "porch", "hours": 0})
    assert response.get_json() == {"camera": "porch", "muted_until": None}
    assert muted_until(app, "porch") is None


@pytest.mark.parametrize(("body", "status"), [
    ({"camera": "porch", "hours": -1}, 400), ({"camera": "porch", "hours": 721}, 400),
    ({"camera": "porch", "hours": "8"}, 400), ({"camera": "porch", "hours": True}, 400),
    ({"camera": "porch"}, 400), ({"hours": 1}, 400), ({"camera": "nobody", "hours": 1}, 404),
    (["porch"], 400),
])
def test_api_refuses_bad_mutes(app: Flask, as_admin: FlaskClient, body: object,
                               status: int) -> None:
    add_camera(app, "porch")
    response = as_admin.post("/api/v1/alerts/mute", json=body)
    assert response.status_code == status and "error" in response.get_json()
    assert muted_until(app, "porch") is None


def test_api_queues_a_test_email_and_reports_its_status(app: Flask, admin_user: Account) -> None:
    client = app.test_client()
    headers = token_of(app, admin_user)  # a token needs no CSRF token
    response = client.post("/api/v1/alerts/test", headers=headers)
    assert response.status_code == 202
    body = response.get_json()
    assert (body["kind"], body["status"], body["subject"]) == ("test", "pending",
                                                              "[NVR] Test email")
    assert body["requested_by"] == admin_user.username
    latest = client.get("/api/v1/alerts/test", headers=headers)
    assert latest.get_json()["id"] == body["id"]


def test_api_latest_test_email_is_404_before_any(as_admin: FlaskClient) -> None:
    assert as_admin.get("/api/v1/alerts/test").status_code == 404


@pytest.mark.parametrize(("method", "url"), [
    ("get", "/api/v1/alerts/settings"), ("put", "/api/v1/alerts/addresses"),
    ("post", "/api/v1/alerts/mute"), ("post", "/api/v1/alerts/test"),
    ("get", "/api/v1/alerts/test"),
])
def test_api_settings_are_for_admins_only(app: Flask, as_viewer: FlaskClient, method: str,
                                          url: str) -> None:
    add_camera(app, "porch")
    response = getattr(as_viewer, method)(url, json={"camera": "porch", "hours": 1,
                                                     "addresses": ["a@example.com"]})
    assert response.status_code == 403 and "error" in response.get_json()
    assert alerts(app) == [] and setting(app) is None and muted_until(app, "porch") is None
