"""The hub's answers to motion reports: its own cameras only, as their stream would be."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from nvrlib.catalog import db
from nvrlib.catalog.models import Camera
from recorder.config import CameraConfig, HubConfig
from recorder.errors import IngestRejected
from recorder.hub import Hub
from recorder.store.motion import EventFields

START = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    """A Hub object on a real SQLite catalog (not started: its catalog-thread methods only)."""
    config = HubConfig(storage=tmp_path / "rec", db_url=f"sqlite:///{tmp_path / 'nvr.db'}",
                       ingest_token="shared",
                       cameras=(CameraConfig("gate", url="rtsp://10.0.0.9/s"),))
    hub = Hub(config)
    db.upgrade(hub.engine)
    for name in ("yard", "porch", "far"):
        hub.catalog.ensure_camera(name, "", "push")
    yield hub
    hub.executor.shutdown()
    hub.engine.dispose()


def fields(camera: str, key: str = "k-1") -> EventFields:
    return EventFields(camera, key, START, START + dt.timedelta(seconds=4), 0.2, (0, 0, 1, 1))


def refusal(call) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(IngestRejected) as caught:
        call()
    return caught.value.status, caught.value.reason


def set_camera(hub: Hub, name: str, **values: object) -> None:
    with hub.catalog.sessions.begin() as session:
        session.execute(update(Camera).where(Camera.name == name).values(**values))


def test_an_event_of_a_recorded_camera_is_stored_and_answered_with_its_settings(hub: Hub):
    set_camera(hub, "yard", motion_sensitivity=70, motion_mask="[[[0, 0], [1, 0], [1, 1]]]")
    answer = hub._store_motion(fields("yard"))
    assert answer == {"enabled": True, "sensitivity": 70, "mask": [[[0, 0], [1, 0], [1, 1]]],
                      "updated_at": None}


def test_cameras_that_are_not_this_hubs_to_record_are_refused(hub: Hub):
    set_camera(hub, "far", hub_id="b")
    set_camera(hub, "porch", enabled=False)
    assert refusal(lambda: hub._store_motion(fields("nobody")))[0] == 404
    assert refusal(lambda: hub._store_motion(fields("far")))[0] == 409
    assert refusal(lambda: hub._store_motion(fields("porch"))) == (423, "camera porch is disabled")
    set_camera(hub, "porch", enabled=True, approval="pending")
    assert refusal(lambda: hub._store_motion(fields("porch")))[0] == 403
    hub._store_motion(fields("yard", "same"))
    set_camera(hub, "porch", approval="approved")
    assert refusal(lambda: hub._store_motion(fields("porch", "same")))[0] == 409


def test_motion_requests_follow_the_streams_token_and_pull_rules(hub: Hub):
    hub.check_motion_access("yard", "shared")
    assert refusal(lambda: hub.check_motion_access("yard", "wrong"))[0] == 401
    assert refusal(lambda: hub.check_motion_access("yard", None))[0] == 401
    assert refusal(lambda: hub.check_motion_access("gate", "shared"))[0] == 409  # pulled
