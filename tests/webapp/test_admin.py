"""The control panel: every camera's state for admins, and buttons that reach the hub."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from .helpers import Account, FakeClock
from .test_api_cameras import (  # noqa: F401  (app, as_admin, as_viewer, hub: fixtures)
    PASSWORD, PULL_URL, FakeHub, add_camera, add_segment, app, as_admin, as_viewer, camera_row,
    commands, hub, logged_in,
)


def page(client: FlaskClient, url: str = "/admin/") -> str:
    response = client.get(url)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def flashes(html: str) -> list[str]:
    return [re.sub(r"\s+", " ", m).strip()
            for m in re.findall(r'<div class="alert alert-\w+[^"]*" role="alert">(.*?)<button',
                                html, re.S)]


# -- who may see it ----------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["/admin/", "/admin/cameras/new", "/admin/cameras/garden/edit"])
def test_viewers_get_403_and_anonymous_users_the_login_page(app: Flask, as_viewer: FlaskClient,
                                                            url: str) -> None:
    add_camera(app, "garden", kind="pull", url=PULL_URL)
    assert as_viewer.get(url).status_code == 403
    anonymous = app.test_client().get(url)
    assert anonymous.status_code == 302 and anonymous.headers["Location"].startswith("/auth/login")


@pytest.mark.parametrize("url", ["/admin/cameras/porch/restart", "/admin/cameras/porch/disable",
                                 "/admin/cameras/garden/remove", "/admin/cameras/new",
                                 "/admin/cameras/garden/edit"])
def test_viewers_cannot_post_actions(app: Flask, as_viewer: FlaskClient, url: str) -> None:
    add_camera(app, "porch")
    add_camera(app, "garden", kind="pull", url=PULL_URL)
    response = as_viewer.post(url, data={"name": "x", "url": "rtsp://cam/", "location": "y"})
    assert response.status_code == 403
    assert commands(app) == [] and camera_row(app, "garden").url == PULL_URL


def test_the_navbar_links_the_panel_for_admins_only(as_admin: FlaskClient,
                                                    as_viewer: FlaskClient) -> None:
    assert 'href="/admin/"' in page(as_admin, "/")
    assert 'href="/admin/"' not in page(as_viewer, "/")


# -- the table ---------------------------------------------------------------------------------

def test_the_table_shows_state_uptime_last_segment_rates_and_edge(app: Flask,
                                                                  as_admin: FlaskClient,
                                                                  clock: FakeClock) -> None:
    add_camera(app, "porch", location="Front door", peer="192.0.2.7:50000", fps=25.0,
               bitrate_bps=2_400_000, restarts=3,
               connected_since=clock.now - dt.timedelta(hours=2, minutes=5),
               last_segment_end=dt.datetime(2026, 3, 1, 11, 59, 58, tzinfo=dt.timezone.utc))
    add_camera(app, "shed", state="stopped", online=False,
               offline_since=dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.timezone.utc))
    html = page(as_admin)
    assert "Front door" in html and "192.0.2.7:50000" in html
    assert "2 h 05 min" in html and "25.0" in html and "2.4 Mbit/s" in html
    assert "2026-03-01 11:59:58 UTC" in html and ">3<" in html
    assert "since <time datetime=\"2026-03-01T09:30:00+00:00\"" in html


def test_a_camera_that_should_record_but_does_not_shows_offline(app: Flask,
                                                                as_admin: FlaskClient) -> None:
    add_camera(app, "shed", state="stopped", online=False)
    add_camera(app, "stranger", approval="pending", state="stopped", online=False)
    add_camera(app, "attic", enabled=False, state="stopped", online=False)
    html = page(as_admin)

    def badge(camera: str) -> tuple[str, ...]:
        row = html.split(f'data-admin-camera="{camera}"', 1)[1]
        found = re.search(r'data-field="state"><span class="badge ([^"]+)"[^>]*>([^<]+)<', row)
        assert found is not None
        return found.groups()

    assert badge("shed") == ("text-bg-danger", "offline")
    assert badge("stranger") == ("text-bg-danger", "offline")
    assert badge("attic") == ("text-bg-secondary", "stopped")  # disabled: stopped on purpose


def test_buttons_match_each_camera(app: Flask, as_admin: FlaskClient) -> None:
    add_camera(app, "porch")
    add_camera(app, "garden", kind="pull", url=PULL_URL)
    add_camera(app, "stranger", approval="pending")
    add_camera(app, "off", enabled=False)
    html = page(as_admin)

    def actions(camera: str) -> set[str]:
        return set(re.findall(rf'action="/admin/cameras/{camera}/(\w+)"', html))

    assert actions("porch") == {"restart", "disconnect", "disable"}
    assert actions("garden") == {"restart", "disable", "remove"}
    assert 'href="/admin/cameras/garden/edit"' in html
    assert actions("stranger") == {"approve", "reject", "restart", "disconnect", "disable"}
    assert actions("off") == {"disconnect", "enable"}
    assert "1 new camera awaiting approval" in html


def test_every_form_carries_the_csrf_token(make_app: Callable[..., Flask],
                                           admin_user: Account) -> None:
    csrf_app = make_app(WTF_CSRF_ENABLED=True)
    add_camera(csrf_app, "porch")
    client = logged_in(csrf_app, admin_user)
    html = page(client)
    forms = re.findall(r"<form method=\"post\".*?</form>", html, re.S)
    assert len(forms) >= 4
    assert all('name="csrf_token"' in form for form in forms)
    assert client.post("/admin/cameras/porch/restart").status_code == 400  # no token
    assert commands(csrf_app) == []


def test_names_and_locations_are_escaped(app: Flask, as_admin: FlaskClient) -> None:
    add_camera(app, "porch", location='<script>alert("x")</script>', peer="<b>edge</b>",
               state="failed", online=False, last_error="<img src=x onerror=alert(1)>")
    html = page(as_admin)
    assert "<script>alert" not in html and "<b>edge" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_pull_camera_credentials_are_never_rendered(app: Flask, as_admin: FlaskClient,
                                                    as_viewer: FlaskClient) -> None:
    add_camera(app, "garden", kind="pull", url=PULL_URL, peer="rtsp://***@192.0.2.10:554/stream1",
               state="backoff", online=False,
               last_error=f"[rtsp @ 0x1] {PULL_URL}: 401 Unauthorized")
    for client, url in [(as_admin, "/admin/"), (as_admin, "/admin/cameras/garden/edit"),
                        (as_admin, "/live/"), (as_admin, "/live/garden"),
                        (as_viewer, "/live/garden"), (as_admin, "/api/v1/cameras")]:
        body = client.get(url).get_data(as_text=True)
        assert PASSWORD not in body, url
    assert "rtsp://admin:***@192.0.2.10:554/stream1" in page(as_admin, "/admin/cameras/garden/edit")


def test_a_silent_hub_shows(app: Flask, as_admin: FlaskClient, clock: FakeClock) -> None:
    add_camera(app, "porch", updated_at=clock.now - dt.timedelta(minutes=1))
    assert "hub silent" in page(as_admin)


# -- actions -----------------------------------------------------------------------------------

def test_restart_shows_the_hubs_answer(app: Flask, as_admin: FlaskClient, hub: FakeHub) -> None:
    add_camera(app, "porch")
    response = as_admin.post("/admin/cameras/porch/restart", follow_redirects=True)
    assert response.status_code == 200 and response.request.path == "/admin/"
    assert flashes(response.get_data(as_text=True)) == [
        "Restarted porch. The hub says: ok: restart porch"]
    assert commands(app) == [("porch", "restart", "alice")]


def test_a_silent_hub_is_reported_after_a_short_wait(app: Flask, as_admin: FlaskClient) -> None:
    add_camera(app, "porch")
    response = as_admin.post("/admin/cameras/porch/disconnect", follow_redirects=True)
    [message] = flashes(response.get_data(as_text=True))
    assert message.startswith("Disconnected porch: sent to the hub, which has not answered yet")


def test_a_hub_refusal_is_shown_as_a_warning(app: Flask, as_admin: FlaskClient) -> None:
    add_camera(app, "porch")
    with FakeHub(app, answer=lambda command: "no edge connected"):
        response = as_admin.post("/admin/cameras/porch/disconnect", follow_redirects=True)
    html = response.get_data(as_text=True)
    assert 'alert-warning' in html
    assert flashes(html) == ["Disconnected porch? The hub says: no edge connected"]


@pytest.mark.parametrize(("url", "status"), [
    ("/admin/cameras/nobody/restart", 404),
    ("/admin/cameras/porch/explode", 400),
    ("/admin/cameras/garden/disconnect", 400),
    ("/admin/cameras/porch/reject", 400),
    ("/admin/cameras/porch/remove", 400),
    ("/admin/cameras/nobody/remove", 404),
    ("/admin/cameras/..%2F..%2Fetc/restart", 404),
])
def test_bad_actions_are_refused(app: Flask, as_admin: FlaskClient, url: str,
                                 status: int) -> None:
    add_camera(app, "porch")
    add_camera(app, "garden", kind="pull", url=PULL_URL)
    assert as_admin.post(url).status_code == status
    assert commands(app) == []


def test_approve_reject_disable_enable(app: Flask, as_admin: FlaskClient, hub: FakeHub) -> None:
    add_camera(app, "stranger", approval="pending")
    add_camera(app, "porch")
    as_admin.post("/admin/cameras/stranger/reject")
    assert (camera_row(app, "stranger").approval, camera_row(app, "stranger").enabled) == (
        "rejected", False)
    as_admin.post("/admin/cameras/stranger/approve")
    assert camera_row(app, "stranger").approval == "approved"
    as_admin.post("/admin/cameras/porch/disable")
    assert camera_row(app, "porch").enabled is False
    response = as_admin.post("/admin/cameras/porch/enable", follow_redirects=True)
    assert camera_row(app, "porch").enabled is True
    assert flashes(response.get_data(as_text=True))[-1] == (
        "Enabled porch. The hub says: ok: enable porch")
    assert [c[1] for c in commands(app)] == ["disable", "enable", "disable", "enable"]


# -- pull cameras ------------------------------------------------------------------------------

def test_add_a_pull_camera_from_the_form(app: Flask, as_admin: FlaskClient, hub: FakeHub) -> None:
    assert "Add RTSP camera" in page(as_admin, "/admin/cameras/new")
    response = as_admin.post("/admin/cameras/new", data={
        "name": "garden", "location": "Back yard", "url": PULL_URL}, follow_redirects=True)
    assert response.request.path == "/admin/"
    html = response.get_data(as_text=True)
    assert flashes(html) == ["Added garden. The hub says: ok: reload garden"]
    assert PASSWORD not in html and "rtsp://***@192.0.2.10:554/stream1" in html
    assert camera_row(app, "garden").url == PULL_URL


@pytest.mark.parametrize(("form", "message"), [
    ({"name": "garden", "url": "http://192.0.2.10/"}, "only rtsp:// and rtsps://"),
    ({"name": "garden", "url": "rtsp://"}, "no host"),
    ({"name": "../x", "url": "rtsp://cam/"}, "camera name"),
    ({"name": "", "url": "rtsp://cam/"}, "This field is required."),
    ({"name": "porch", "url": "rtsp://cam/"}, "a camera named porch exists already"),
])
def test_a_bad_form_is_shown_again_with_the_reason(app: Flask, as_admin: FlaskClient,
                                                   form: dict[str, str], message: str) -> None:
    add_camera(app, "porch")
    response = as_admin.post("/admin/cameras/new", data=form)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert camera_row(app, "garden") is None and commands(app) == []


def test_edit_keeps_the_url_unless_a_new_one_is_given(app: Flask, as_admin: FlaskClient,
                                                      hub: FakeHub) -> None:
    add_camera(app, "garden", kind="pull", url=PULL_URL, location="Back")
    html = page(as_admin, "/admin/cameras/garden/edit")
    assert 'value="Back"' in html and PASSWORD not in html
    as_admin.post("/admin/cameras/garden/edit", data={"location": "Shed", "url": ""})
    assert (camera_row(app, "garden").location, camera_row(app, "garden").url) == ("Shed", PULL_URL)
    as_admin.post("/admin/cameras/garden/edit", data={"location": "Shed", "url": "rtsp://new/"})
    assert camera_row(app, "garden").url == "rtsp://new/"
    bad = as_admin.post("/admin/cameras/garden/edit", data={"location": "Shed", "url": "ftp://x/"})
    assert bad.status_code == 400 and camera_row(app, "garden").url == "rtsp://new/"
    assert [c[1] for c in commands(app)] == ["reload", "reload"]


def test_the_edit_form_shows_the_password_masked_and_keeps_it_unless_retyped(
        app: Flask, as_admin: FlaskClient, hub: FakeHub) -> None:
    stored = f"rtsp://admin:{PASSWORD}@192.0.2.10:554/stream1?channel=1&token=T0k-9f"
    add_camera(app, "garden", kind="pull", url=stored, location="Back")
    html = page(as_admin, "/admin/cameras/garden/edit")
    shown = "rtsp://admin:***@192.0.2.10:554/stream1?channel=1&amp;token=***"
    assert f'value="{shown}"' in html and PASSWORD not in html and "T0k-9f" not in html
    # sent back as shown, with only the host changed: the secrets stay
    as_admin.post("/admin/cameras/garden/edit", data={
        "location": "Back", "url": shown.replace("&amp;", "&").replace("192.0.2.10", "cam.lan")})
    assert camera_row(app, "garden").url == stored.replace("192.0.2.10", "cam.lan")
    # a new password typed over the mask replaces the stored one
    as_admin.post("/admin/cameras/garden/edit", data={
        "location": "Back", "url": "rtsp://admin:n3w-pw@cam.lan:554/stream1?channel=1&token=***"})
    assert camera_row(app, "garden").url == "rtsp://admin:n3w-pw@cam.lan:554/stream1?channel=1&token=T0k-9f"
    # a mask where nothing is stored is refused, and the form says why
    bad = as_admin.post("/admin/cameras/garden/edit", data={
        "location": "Back", "url": "rtsp://admin:n3w-pw@cam.lan/stream1?password=***"})
    assert bad.status_code == 400 and "type the real one" in bad.get_data(as_text=True)
    assert camera_row(app, "garden").url.endswith("token=T0k-9f")


@pytest.mark.parametrize(("camera", "status"), [("porch", 400), ("nobody", 404)])
def test_only_pull_cameras_added_here_have_an_edit_page(app: Flask, as_admin: FlaskClient,
                                                        camera: str, status: int) -> None:
    add_camera(app, "porch")
    assert as_admin.get(f"/admin/cameras/{camera}/edit").status_code == status


def test_remove_a_pull_camera(app: Flask, as_admin: FlaskClient, hub: FakeHub,
                              clock: FakeClock) -> None:
    add_camera(app, "garden", kind="pull", url=PULL_URL)
    add_camera(app, "yard", kind="pull", url="rtsp://yard/")
    add_segment(app, "yard", clock.now)
    response = as_admin.post("/admin/cameras/garden/remove", follow_redirects=True)
    assert flashes(response.get_data(as_text=True)) == [
        "Removed garden. The hub says: ok: reload garden"]
    assert camera_row(app, "garden") is None
    as_admin.post("/admin/cameras/yard/remove")
    assert (camera_row(app, "yard").url, camera_row(app, "yard").enabled) == (None, False)


def test_remove_a_pull_camera_that_had_an_outage_and_a_lock(app: Flask, as_admin: FlaskClient,
                                                            hub: FakeHub, clock: FakeClock) -> None:
    # no footage: its outages explain nothing and its locks protect nothing, so they go too
    from nvrlib.catalog.models import Outage, RecordingLock
    from webapp.extensions import db

    add_camera(app, "garden", kind="pull", url=PULL_URL)
    with app.app_context():
        camera_id = camera_row(app, "garden").id
        db.session.add(Outage(camera_id=camera_id, started_at=clock.now, reason="connection_lost",
                              detail=""))
        db.session.add(RecordingLock(camera_id=camera_id, start_time=clock.now,
                                     end_time=clock.now + dt.timedelta(hours=1)))
        db.session.commit()
    assert as_admin.post("/admin/cameras/garden/remove").status_code == 302
    assert camera_row(app, "garden") is None


def test_the_panel_fits_a_phone(app: Flask, as_admin: FlaskClient) -> None:
    # on a narrow screen only the name and state columns show; the rest is stacked in the first
    add_camera(app, "porch", peer="192.0.2.7:50000")
    html = page(as_admin)
    headers = re.findall(r'<th scope="col"( class="[^"]*")?>', html)
    assert sum("d-none d-lg-table-cell" not in h for h in headers) == 2
    assert 'class="d-lg-none small' in html
    assert "table-responsive" not in html  # no sideways scrolling, even inside the table
