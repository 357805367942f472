"""GET /api/v1/health for load balancers and GET /metrics for Prometheus, from seeded catalogs.

The hub's side (heartbeat, camera status, checks, retention counters) is written straight into
the test's catalog with the recorder's models; the fake clock stands at 2026-03-01 12:00 UTC.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event, select

from nvrlib.catalog.models import Alert, Camera, CameraStatus, HubStatus, Segment
from webapp.config import flask_overrides, settings_from
from webapp.extensions import db
from webapp.models import User

from .helpers import Account, AuthActions, FakeClock, csrf_token_of, dispose

GB = 1_000_000_000
MAIN = (("hub", "main"),)  # the label of the hub series of a one-hub catalog
SECRET_NAME = "secret-vault-cam"
SECRET_PATH = "/srv/nvr/secret-recordings"


def seed_hub(app: Flask, *, heartbeat_age: float | None = 5.0, stopped_age: float | None = None,
             total: int = 1000 * GB, free: int = 400 * GB,
             checks: dict[str, Any] | None = None, **columns: Any) -> None:
    """Write hub_status row 1 as the hub would (heartbeat ``heartbeat_age`` s ago)."""
    now = app.config["CLOCK"]()

    def ago(seconds: float | None) -> dt.datetime | None:
        return None if seconds is None else now - dt.timedelta(seconds=seconds)

    if checks is None:
        checks = {"disk": {"ok": True, "detail": f"{SECRET_PATH}: 40% free", "at": "x"},
                  "catalog": {"ok": True, "detail": "", "at": "x"}}
    with app.app_context():
        db.session.merge(HubStatus(id=1, pid=4242, started_at=now - dt.timedelta(hours=1),
                                   heartbeat_at=ago(heartbeat_age), stopped_at=ago(stopped_age),
                                   disk_total_bytes=total, disk_free_bytes=free,
                                   checks=json.dumps(checks), **columns))
        db.session.commit()


def seed_camera(app: Flask, name: str, *, enabled: bool = True, approval: str = "approved",
                muted_for: float | None = None, reported: bool = True, **status: Any) -> int:
    """A camera with a fresh status row (running and online unless told otherwise)."""
    now = app.config["CLOCK"]()
    with app.app_context():
        camera = Camera(name=name, enabled=enabled, approval=approval,
                        alerts_muted_until=(now + dt.timedelta(seconds=muted_for)
                                            if muted_for is not None else None))
        db.session.add(camera)
        db.session.flush()
        if reported:
            row = {"state": "running", "online": True, "updated_at": now, **status}
            db.session.add(CameraStatus(camera_id=camera.id, **row))
        db.session.commit()
        return camera.id


def seed_segment(app: Flask, camera_id: int, size: int, status: str = "ok") -> None:
    """One recording of ``size`` bytes."""
    with app.app_context():
        count = len(db.session.scalars(select(Segment.id)).all())
        start = dt.datetime(2026, 3, 1, 10, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=count)
        db.session.add(Segment(camera_id=camera_id, start_time=start,
                               end_time=start + dt.timedelta(seconds=1), duration=1.0,
                               size_bytes=size, path=f"c{camera_id}/{count}.ts", status=status))
        db.session.commit()


def seed_alerts(app: Flask, *statuses: str) -> None:
    with app.app_context():
        db.session.add_all(Alert(kind="offline", camera=SECRET_NAME, status=status)
                           for status in statuses)
        db.session.commit()


def health(client: FlaskClient) -> tuple[int, dict[str, Any], str]:
    response = client.get("/api/v1/health")
    return response.status_code, response.get_json(), response.get_data(as_text=True)


# -- health ------------------------------------------------------------------------------------

def test_health_is_ok_without_a_login_when_the_hub_beats_and_cameras_record(
        app: Flask, client: FlaskClient) -> None:
    seed_hub(app)
    seed_camera(app, SECRET_NAME, peer="192.0.2.7:50000")
    seed_camera(app, "off-by-choice", enabled=False, state="stopped", online=False)
    status, body, text = health(client)
    assert status == 200
    assert body == {
        "status": "ok", "time": "2026-03-01T12:00:00.000Z", "database": "ok",
        "hub": {"running": True, "heartbeat_age_seconds": 5.0},
        "cameras": {"total": 2, "online": 1, "offline": 0, "failed": 0, "not_recording": 0},
        "disk": {"total_bytes": 1000 * GB, "free_bytes": 400 * GB, "free_percent": 40.0,
                 "low": False},
        "checks": {"catalog": {"ok": True}, "disk": {"ok": True}},
    }
    for secret in (SECRET_NAME, "off-by-choice", SECRET_PATH, "192.0.2.7", "4242"):
        assert secret not in text


@pytest.mark.parametrize(("setup", "cameras"), [
    (lambda app: seed_camera(app, "porch", state="stopped", online=False),
     {"total": 1, "online": 0, "offline": 1, "failed": 0, "not_recording": 0}),
    (lambda app: seed_camera(app, "porch", state="failed", online=False, restarts=9),
     {"total": 1, "online": 0, "offline": 0, "failed": 1, "not_recording": 0}),
    # the hub stopped refreshing the row: the camera is offline, whatever the row says
    (lambda app: seed_camera(app, "porch", updated_at=app.config["CLOCK"]()
                             - dt.timedelta(minutes=2)),
     {"total": 1, "online": 0, "offline": 1, "failed": 0, "not_recording": 0}),
    (lambda app: seed_camera(app, "porch", reported=False),  # no status row at all yet
     {"total": 1, "online": 0, "offline": 1, "failed": 0, "not_recording": 0}),
], ids=["offline", "failed", "stale-row", "never-reported"])
def test_health_is_degraded_but_200_when_a_camera_is_not_recording(
        app: Flask, client: FlaskClient, setup: Callable[[Flask], None],
        cameras: dict[str, int]) -> None:
    seed_hub(app)
    setup(app)
    status, body, _ = health(client)
    assert (status, body["status"], body["cameras"]) == (200, "degraded", cameras)


def test_a_dark_pending_camera_counts_as_offline_a_rejected_one_does_not(
        app: Flask, client: FlaskClient) -> None:
    seed_hub(app)
    seed_camera(app, "new-one", approval="pending", state="stopped", online=False)
    seed_camera(app, "refused", approval="rejected", enabled=False, reported=False)
    status, body, _ = health(client)
    assert (status, body["status"]) == (200, "degraded")
    assert body["cameras"] == {"total": 2, "online": 0, "offline": 1, "failed": 0, "not_recording": 0}


def test_rejected_and_disabled_cameras_do_not_degrade_health(app: Flask,
                                                             client: FlaskClient) -> None:
    seed_hub(app)
    seed_camera(app, "porch")
    seed_camera(app, "refused", approval="rejected", enabled=False, reported=False)
    seed_camera(app, "attic", enabled=False, state="stopped", online=False)
    status, body, _ = health(client)
    assert (status, body["status"]) == (200, "ok")
    assert body["cameras"] == {"total": 3, "online": 1, "offline": 0, "failed": 0, "not_recording": 0}


def test_health_is_degraded_when_a_check_fails(app: Flask, client: FlaskClient) -> None:
    seed_hub(app, checks={"catalog": {"ok": False, "detail": f"{SECRET_PATH}/x.ts missing"}})
    status, body, text = health(client)
    assert (status, body["status"], body["checks"]) == (200, "degraded",
                                                        {"catalog": {"ok": False}})
    assert SECRET_PATH not in text


def test_health_is_degraded_when_the_disk_is_low(make_app: Callable[..., Flask]) -> None:
    app = make_app(DISK_LOW_PERCENT=15.0)
    seed_hub(app, total=1000 * GB, free=149 * GB)
    status, body, _ = health(app.test_client())
    assert (status, body["status"]) == (200, "degraded")
    assert body["disk"] == {"total_bytes": 1000 * GB, "free_bytes": 149 * GB,
                            "free_percent": 14.9, "low": True}


def streams_check(*not_recording: str) -> dict[str, Any]:
    """hub_status.checks as the hub writes them while cameras receive but record nothing."""
    detail = ", ".join(f"{name} is not recording (no segment for 40 s, failed)"
                       for name in not_recording)
    return {"streams": {"ok": not not_recording, "detail": detail or "every stream is recording",
                        "at": "x", "not_recording": list(not_recording)},
            "catalog": {"ok": True, "detail": "", "at": "x"}}


def test_health_fails_with_503_while_a_camera_receives_but_records_nothing(
        app: Flask, client: FlaskClient, viewer_user: Account) -> None:
    seed_hub(app, checks=streams_check(SECRET_NAME))
    seed_camera(app, SECRET_NAME, state="failed", online=False)
    seed_camera(app, "porch")
    status, body, text = health(client)
    assert (status, body["status"]) == (503, "degraded")
    assert body["cameras"] == {"total": 2, "online": 1, "offline": 0, "failed": 1,
                               "not_recording": 1}
    assert SECRET_NAME not in text  # an anonymous probe gets counts only
    response = logged_in(app, viewer_user).get("/api/v1/health")
    assert response.status_code == 503
    assert response.get_json()["not_recording"] == [SECRET_NAME]  # a user is told which
    found = samples(logged_in(app, viewer_user).get("/metrics").get_data(as_text=True))
    assert found[("nvr_camera_not_recording", (("camera", SECRET_NAME),))] == 1
    assert found[("nvr_camera_not_recording", (("camera", "porch"),))] == 0


def test_health_ignores_a_not_recording_list_of_a_silent_hub_or_unknown_cameras(
        app: Flask, client: FlaskClient) -> None:
    seed_hub(app, checks=streams_check("gone-camera"))
    seed_camera(app, "porch")
    status, body, _ = health(client)
    assert body["cameras"]["not_recording"] == 0 and status == 200
    seed_hub(app, heartbeat_age=60.0, checks=streams_check("porch"))
    status, body, _ = health(client)
    assert (status, body["status"], body["cameras"]["not_recording"]) == (503, "down", 0)


@pytest.mark.parametrize(("hub", "age"), [
    ({"heartbeat_age": 31.0}, 31.0),
    ({"heartbeat_age": None}, None),
    ({"heartbeat_age": 5.0, "stopped_age": 2.0}, 5.0),  # stopped cleanly after its last beat
], ids=["stale-heartbeat", "never-beat", "stopped"])
def test_health_is_down_with_503_without_a_recent_heartbeat(app: Flask, client: FlaskClient,
                                                            hub: dict[str, Any],
                                                            age: float | None) -> None:
    seed_hub(app, **hub)
    seed_camera(app, "porch")
    status, body, _ = health(client)
    assert (status, body["status"], body["database"]) == (503, "down", "ok")
    assert body["hub"] == {"running": False, "heartbeat_age_seconds": age}


def test_health_is_down_before_the_hub_ever_ran(client: FlaskClient) -> None:
    status, body, _ = health(client)
    assert (status, body["status"], body["hub"]["running"]) == (503, "down", False)
    assert body["disk"] == {"total_bytes": None, "free_bytes": None, "free_percent": None,
                            "low": False}


def break_catalog(app: Flask) -> None:
    """Make the catalog file unopenable: a folder where the SQLite file was."""
    dispose(app)
    catalog = Path(app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///"))
    for path in catalog.parent.glob(catalog.name + "*"):
        os.replace(path, path.with_name("moved-" + path.name))
    catalog.mkdir()


def test_health_is_down_with_503_when_the_catalog_is_unreachable(app: Flask,
                                                                 client: FlaskClient) -> None:
    seed_hub(app)
    break_catalog(app)
    status, body, _ = health(client)
    assert status == 503
    assert body == {"status": "down", "time": "2026-03-01T12:00:00.000Z", "database": "error",
                    "hub": {"running": False, "heartbeat_age_seconds": None},
                    "cameras": None, "disk": None, "checks": {}}


def test_health_passes_every_guard_a_load_balancer_meets(make_app: Callable[..., Flask]) -> None:
    app = make_app(WTF_CSRF_ENABLED=True)
    seed_hub(app)
    client = app.test_client()
    for method in ("GET", "HEAD"):
        response = client.open("/api/v1/health", method=method)
        assert response.status_code == 200, method
        assert "Set-Cookie" not in response.headers  # no session for a probe
        assert response.headers["Cache-Control"] == "no-store"
    # a wrong token or a stale cookie does not turn the probe into a 401
    assert client.get("/api/v1/health",
                      headers={"Authorization": "Bearer nvr_wrong"}).status_code == 200


def test_health_costs_a_handful_of_queries(app: Flask, client: FlaskClient) -> None:
    seed_hub(app)
    for index in range(20):
        seed_camera(app, f"cam{index}")
    statements: list[str] = []
    with app.app_context():
        engine = db.engines[None]

        def listener(*args: Any) -> None:
            statements.append(args[2])  # the SQL text

        event.listen(engine, "before_cursor_execute", listener)
        try:
            assert health(client)[0] == 200
        finally:
            event.remove(engine, "before_cursor_execute", listener)
    assert len(statements) <= 3, statements  # not one query per camera


# -- metrics -----------------------------------------------------------------------------------

def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parse a Prometheus text exposition: {(sample name, sorted labels): value}."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def logged_in(app: Flask, account: Account) -> FlaskClient:
    client = app.test_client()
    AuthActions(client).login(account)
    return client


def token_of(app: Flask, account: Account) -> str:
    with app.app_context():
        token = db.session.get(User, account.id).new_api_token(app.config["CLOCK"]())
        db.session.commit()
        return token


@pytest.fixture
def seeded(app: Flask, clock: FakeClock) -> Flask:
    """A catalog with a running porch, a failed shed, footage, alerts and hub counters."""
    seed_hub(app, heartbeat_age=2.5, total=2000 * GB, free=500 * GB, footage_bytes=1234567,
             retention_deleted_segments=17, retention_deleted_bytes=9876543,
             checks={"disk": {"ok": True}, "catalog": {"ok": False}})
    porch = seed_camera(app, "porch", fps=25.0, bitrate_bps=2_400_000.0, bytes_in=5_000_000,
                        bytes_written=4_900_000, frames=7500, restarts=2,
                        last_segment_end=clock.now - dt.timedelta(seconds=4))
    shed = seed_camera(app, "shed", state="failed", online=False, restarts=10, muted_for=3600)
    seed_segment(app, porch, 1000)
    seed_segment(app, porch, 2500)
    seed_segment(app, porch, 99999, status="missing")  # gone from disk: not footage
    seed_segment(app, shed, 700)
    seed_alerts(app, "sent", "sent", "failed", "suppressed")
    return app


def test_metrics_report_each_camera_the_hub_and_the_alerts(seeded: Flask,
                                                           admin_user: Account) -> None:
    response = logged_in(seeded, admin_user).get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=0.0.4")
    found = samples(response.get_data(as_text=True))

    def cam(name: str, camera: str, **labels: str) -> float:
        return found[(name, tuple(sorted({"camera": camera, **labels}.items())))]

    assert cam("nvr_camera_up", "porch") == 1 and cam("nvr_camera_up", "shed") == 0
    assert cam("nvr_camera_fps", "porch") == 25.0
    assert cam("nvr_camera_bitrate_bits_per_second", "porch") == 2_400_000
    assert cam("nvr_camera_received_bytes_total", "porch") == 5_000_000
    assert cam("nvr_camera_written_bytes_total", "porch") == 4_900_000
    assert cam("nvr_camera_frames_total", "porch") == 7500
    assert cam("nvr_camera_restarts_total", "shed") == 10
    assert cam("nvr_camera_last_segment_age_seconds", "porch") == 4.0
    assert ("nvr_camera_last_segment_age_seconds", (("camera", "shed"),)) not in found
    assert cam("nvr_camera_state", "porch", state="running") == 1
    assert cam("nvr_camera_state", "porch", state="failed") == 0
    assert cam("nvr_camera_state", "shed", state="failed") == 1
    assert cam("nvr_camera_footage_bytes", "porch") == 3500
    assert cam("nvr_camera_footage_bytes", "shed") == 700
    assert cam("nvr_camera_alerts_muted", "shed") == 1
    assert cam("nvr_camera_alerts_muted", "porch") == 0
    assert cam("nvr_camera_offline", "shed") == 1 and cam("nvr_camera_offline", "porch") == 0

    assert found[("nvr_hub_up", MAIN)] == 1
    assert found[("nvr_hub_heartbeat_age_seconds", MAIN)] == 2.5
    assert found[("nvr_disk_total_bytes", MAIN)] == 2000 * GB
    assert found[("nvr_disk_free_bytes", MAIN)] == 500 * GB
    assert found[("nvr_footage_bytes", MAIN)] == 1234567
    assert found[("nvr_retention_deleted_segments_total", MAIN)] == 17
    assert found[("nvr_retention_deleted_bytes_total", MAIN)] == 9876543
    assert found[("nvr_alerts", (("status", "sent"),))] == 2
    assert found[("nvr_alerts", (("status", "failed"),))] == 1
    assert found[("nvr_alerts", (("status", "pending"),))] == 0
    assert found[("nvr_check_ok", (("check", "disk"), ("hub", "main")))] == 1
    assert found[("nvr_check_ok", (("check", "catalog"), ("hub", "main")))] == 0


def test_metrics_of_a_hub_that_stopped_beating(app: Flask, viewer_user: Account,
                                               clock: FakeClock) -> None:
    seed_hub(app, heartbeat_age=120.0)
    seed_camera(app, "porch", fps=25.0, updated_at=clock.now - dt.timedelta(minutes=2))
    found = samples(logged_in(app, viewer_user).get("/metrics").get_data(as_text=True))
    assert found[("nvr_hub_up", MAIN)] == 0
    assert found[("nvr_hub_heartbeat_age_seconds", MAIN)] == 120
    assert found[("nvr_camera_up", (("camera", "porch"),))] == 0
    assert found[("nvr_camera_fps", (("camera", "porch"),))] == 0  # not the row's last word
    assert found[("nvr_camera_state", (("camera", "porch"), ("state", "unknown")))] == 1


def test_metrics_offer_openmetrics_to_a_prometheus_that_asks(seeded: Flask,
                                                             viewer_user: Account) -> None:
    response = logged_in(seeded, viewer_user).get(
        "/metrics", headers={"Accept": "application/openmetrics-text;version=1.0.0,text/plain"})
    assert response.content_type.startswith("application/openmetrics-text")
    assert response.get_data(as_text=True).endswith("# EOF\n")


def test_metrics_need_a_login_or_a_token(seeded: Flask, viewer_user: Account) -> None:
    client = seeded.test_client()
    refused = client.get("/metrics")
    assert refused.status_code == 401  # not the login page: Prometheus cannot log in
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = client.get("/metrics", headers={"Authorization": "Bearer nvr_wrong"})
    assert wrong.status_code == 401
    token = token_of(seeded, viewer_user)
    allowed = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert allowed.status_code == 200 and b"nvr_camera_up" in allowed.data
    assert "Set-Cookie" not in allowed.headers


def test_public_metrics_needs_no_credentials(make_app: Callable[..., Flask]) -> None:
    app = make_app(PUBLIC_METRICS=True)
    seed_hub(app)
    response = app.test_client().get("/metrics")
    assert response.status_code == 200
    assert samples(response.get_data(as_text=True))[("nvr_hub_up", MAIN)] == 1


def test_metrics_answer_503_when_the_catalog_is_unreachable(app: Flask,
                                                            viewer_user: Account) -> None:
    client = logged_in(app, viewer_user)
    break_catalog(app)
    response = client.get("/metrics")
    assert response.status_code == 503
    assert b"unreachable" in response.data


def test_the_metrics_endpoint_takes_no_csrf_token_for_get(make_app: Callable[..., Flask],
                                                          viewer_user: Account) -> None:
    app = make_app(WTF_CSRF_ENABLED=True)
    client = logged_in(app, viewer_user)
    csrf_token_of(client.get("/"))  # a normal session
    assert client.get("/metrics").status_code == 200


# -- configuration -----------------------------------------------------------------------------

def test_public_metrics_and_the_disk_threshold_come_from_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text('[alerts]\ndisk_low_percent = 12.5\n\n[webapp]\npublic_metrics = true\n')
    overrides = flask_overrides(settings_from(config, {}))
    assert overrides["PUBLIC_METRICS"] is True and overrides["DISK_LOW_PERCENT"] == 12.5
    defaults = flask_overrides(settings_from(None, {}))
    assert defaults["PUBLIC_METRICS"] is False and defaults["DISK_LOW_PERCENT"] == 10.0


def test_public_metrics_must_be_a_boolean(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text('[webapp]\npublic_metrics = "yes"\n')
    with pytest.raises(Exception, match="webapp.public_metrics: expected true or false"):
        settings_from(config, {})

