"""Pull URLs to loopback or link-local addresses need allow_local_camera_urls (issue 9).

Without it an admin could probe the hub's own ports (``rtsp://127.0.0.1:22`` said "refused"
where a closed port said "timed out").
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from nvrlib import camera_urls
from nvrlib.catalog.models import Camera
from recorder.cli import parser as hub_parser
from recorder.config import build_config, load_file
from webapp.config import flask_overrides, settings_from
from webapp.extensions import db
from webapp.models import ROLE_ADMIN, User

from .helpers import Account, AuthActions

LOCAL_URLS = [
    "rtsp://127.0.0.1:22/",
    "rtsp://admin:pw@127.0.0.53:554/stream",
    "rtsp://127.1/",  # what inet_aton reads as 127.0.0.1
    "rtsp://localhost:22/",  # a name counts by what it resolves to
    "rtsp://[::1]:22/",
    "rtsp://[::ffff:127.0.0.1]/",
    "rtsps://169.254.169.254/latest",
    "rtsp://[fe80::1]/",
    "rtsp://0.0.0.0:22/",
]
REMOTE_URLS = ["rtsp://192.0.2.10:554/stream1", "rtsp://cam.invalid/"]


@pytest.mark.parametrize("url", LOCAL_URLS)
def test_local_urls_are_refused_with_how_to_allow_them(url: str) -> None:
    with pytest.raises(camera_urls.LocalCameraURL) as refused:
        camera_urls.check_camera_url(url, allow_local=False)
    assert "allow_local_camera_urls = true" in str(refused.value)
    assert "pw" not in str(refused.value)  # no credentials in the message
    camera_urls.check_camera_url(url, allow_local=True)


@pytest.mark.parametrize("url", REMOTE_URLS)
def test_other_urls_are_accepted(url: str) -> None:
    camera_urls.check_camera_url(url, allow_local=False)


def _camera(app: Flask, name: str) -> Camera | None:
    with app.app_context():
        return db.session.query(Camera).filter_by(name=name).one_or_none()


def test_the_api_refuses_a_loopback_camera_unless_allowed(
        make_app: Callable[..., Flask]) -> None:
    refusing = make_app(CAMERA_COMMAND_TIMEOUT=0)
    client = refusing.test_client()
    AuthActions(client).login(_make_admin(refusing))
    response = client.post("/api/v1/cameras", json={"name": "probe",
                                                    "url": "rtsp://127.0.0.1:22/"})
    assert response.status_code == 400
    assert "allow_local_camera_urls" in response.get_json()["error"]
    assert _camera(refusing, "probe") is None
    allowing = make_app(CAMERA_COMMAND_TIMEOUT=0, ALLOW_LOCAL_CAMERA_URLS=True)
    client = allowing.test_client()
    AuthActions(client).login(_make_admin(allowing, "bob"))
    response = client.post("/api/v1/cameras", json={"name": "probe",
                                                    "url": "rtsp://127.0.0.1:22/"})
    assert response.status_code == 201, response.get_json()
    assert _camera(allowing, "probe") is not None


def test_an_edit_to_a_loopback_url_is_refused(make_app: Callable[..., Flask]) -> None:
    app = make_app(CAMERA_COMMAND_TIMEOUT=0)
    with app.app_context():
        db.session.add(Camera(name="garden", kind="pull", url="rtsp://192.0.2.10/"))
        db.session.commit()
    client = app.test_client()
    AuthActions(client).login(_make_admin(app))
    response = client.patch("/api/v1/cameras/garden", json={"url": "rtsp://localhost:22/"})
    assert response.status_code == 400 and "allow_local_camera_urls" in response.get_json()["error"]
    assert _camera(app, "garden").url == "rtsp://192.0.2.10/"
    page = client.post("/admin/cameras/garden/edit", data={"url": "rtsp://[::1]:22/"})
    assert page.status_code == 400 and "allow_local_camera_urls" in page.get_data(as_text=True)


def test_the_web_app_reads_the_switch_from_the_hubs_config_file(tmp_path: Path) -> None:
    config = tmp_path / "nvr.toml"
    config.write_text("allow_local_camera_urls = true\n")
    assert flask_overrides(settings_from(config, {}))["ALLOW_LOCAL_CAMERA_URLS"] is True
    assert flask_overrides(settings_from(None, {}))["ALLOW_LOCAL_CAMERA_URLS"] is False
    flag = {camera_urls.ALLOW_KEY: True}
    assert flask_overrides(settings_from(None, flag))["ALLOW_LOCAL_CAMERA_URLS"] is True


def _make_admin(app: Flask, name: str = "alice") -> Account:
    with app.app_context():
        user = User(username=name, role=ROLE_ADMIN, active=True, created_at=app.config["CLOCK"]())
        user.set_password("admin-password-123")
        db.session.add(user)
        db.session.commit()
        return Account(user.id, name, "admin-password-123", ROLE_ADMIN)


def test_the_hub_reads_the_switch_from_its_file_and_its_flag(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text("allow_local_camera_urls = true\n")
    assert build_config(load_file(config), {}).allow_local_camera_urls is True
    assert build_config({}, {}).allow_local_camera_urls is False
    flag = hub_parser().parse_args([camera_urls.ALLOW_FLAG]).allow_local_camera_urls
    assert build_config({}, {camera_urls.ALLOW_KEY: flag}).allow_local_camera_urls is True
