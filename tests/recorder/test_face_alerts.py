"""Face alerts: a person's alert at any hour, unknown faces only where and when armed, one email
per sighting with its crop attached, nothing for old or erased sightings (whose crops go)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from nvrlib.catalog.models import Camera, FaceSample, FaceSighting, Person, Setting, utcnow
from nvrlib.faces import embedding_to_bytes
from nvrlib.faces_gallery import load_gallery
from recorder.config import AlertsConfig, HubConfig
from recorder.health.alerts import AlertCenter, AlertEvent, debounce_key
from recorder.health.face_alerts import FaceAlerts
from recorder.health.motion_alerts import snapshot_attacher
from recorder.store.catalog import Catalog
from recorder.store.faces import SightingFields, store_sighting, sweep_erased
from recorder.store.storage import Storage
from tests.support.procs import wait_for
from tests.support.sendgrid_stub import SendGridStub, attachments_of

from .test_alerts import engine, stub  # noqa: F401  (fixtures: a migrated catalog, the stand-in)
from .test_motion_alerts import alert_statuses, run_job

UTC = dt.timezone.utc
WEB_URL = "http://nvr.local:8080"
CROP = b"\xff\xd8\xff\xe0" + bytes(range(256)) + b"\xff\xd9"


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return vector / np.linalg.norm(vector)


ALICE, BOB, STRANGER = unit(1), unit(2), unit(3)


class Setup:
    """A hub's face alerts minus the hub: its catalog, storage, alert center and the job."""

    def __init__(self, engine: sqlalchemy.Engine, root: Path, stub: SendGridStub) -> None:
        self.engine = engine
        self.catalog = Catalog(engine, Storage(root))
        root.mkdir(parents=True, exist_ok=True)
        alerts = AlertsConfig(api_key="SG.test", api_host=stub.url, email_to=("o@example.com",),
                              email_from="nvr@example.com", send_timeout=2.0,
                              retry_initial=0.1, web_url=WEB_URL)
        self.center = AlertCenter(alerts, engine,
                                  attach=snapshot_attacher(self.catalog.storage, "main"))
        self.job = FaceAlerts(self.catalog, HubConfig(alerts=alerts), self.raise_alert)
        self.job.run_once()  # the first poll marks where "new" starts
        self.sightings = 0

    def raise_alert(self, kind: str, camera: str | None, details: dict[str, object]) -> None:
        """What Hub.raise_alert does."""
        self.center.notify(AlertEvent(kind, camera, utcnow(), {**details, "hub": "main"}))

    def camera(self, name: str, unknown_alerts: bool = False) -> None:
        with Session(self.engine) as session:
            session.add(Camera(name=name, faces_unknown_alerts=unknown_alerts))
            session.commit()

    def person(self, name: str, embedding: np.ndarray, alert: bool) -> None:
        with Session(self.engine) as session:
            person = Person(name=name, name_key=name.casefold(), alert=alert)
            session.add(person)
            session.flush()
            session.add(FaceSample(person_id=person.id, embedding=embedding_to_bytes(embedding)))
            session.commit()

    def setting(self, key: str, value: str) -> None:
        with Session(self.engine) as session:
            session.merge(Setting(key=key, value=value))
            session.commit()

    def sighting(self, camera: str, embedding: np.ndarray, start: dt.datetime | None = None,
                 key: str | None = None, end: dt.datetime | None = None) -> int:
        """Store a report as the hub does when an edge sends one; return the row's id."""
        if key is None:
            self.sightings += 1
            key = f"run-f{self.sightings}"
        with Session(self.engine) as session:
            camera_id = session.scalar(select(Camera.id).where(Camera.name == camera))
            gallery = load_gallery(session)
        fields = SightingFields(camera, key, start or utcnow(), end, (0.1, 0.1, 0.2, 0.3), 120,
                                1.2, embedding, CROP)
        store_sighting(self.catalog, fields, camera_id, gallery)
        with Session(self.engine) as session:
            return session.scalar(select(FaceSighting.id).where(FaceSighting.sighting_key == key))

    def poll(self) -> int:
        """Run the job once and wait until what it raised is stored."""
        return run_job(self.job, self.center)


@pytest.fixture
def setup(engine: sqlalchemy.Engine, tmp_path: Path, stub: SendGridStub) -> Iterator[Setup]:
    made = Setup(engine, tmp_path / "recordings", stub)
    made.center.start()
    try:
        yield made
    finally:
        made.center.stop(timeout=2.0)


def _body(mail: dict[str, Any]) -> str:
    return next(part["value"] for part in mail["content"] if part["type"] == "text/plain")


def _hours_without(now: dt.datetime) -> str:
    later = now + dt.timedelta(hours=2)
    return f"{later:%H}:00-{(later + dt.timedelta(hours=1)):%H}:00"


def _hours_with(now: dt.datetime) -> str:
    return f"{now:%H}:00-{(now + dt.timedelta(hours=1)):%H}:00"


def test_a_persons_alert_goes_at_any_hour_once_per_sighting_with_the_crop(
        setup: Setup, stub: SendGridStub) -> None:
    setup.camera("porch")
    setup.person("Alice", ALICE, alert=True)
    setup.person("Bob", BOB, alert=False)
    now = utcnow()
    setup.setting("faces.armed_hours", _hours_without(now))  # disarmed: a person's alert still goes
    setup.setting("motion.timezone", "UTC")
    sighting = setup.sighting("porch", ALICE + 0.01, now, key="a-f1")
    setup.sighting("porch", BOB, now)  # Bob's alert is off
    assert setup.poll() == 1
    mail = stub.wait_for(lambda m: m.get("custom_args", {}).get("kind") == "face").json
    assert mail["subject"] == "[NVR] Alice at porch"
    assert attachments_of(mail) == [(f"face-{sighting}.jpg", "image/jpeg", CROP)]
    body = _body(mail)
    assert "camera porch saw Alice (distance 0." in body and "The face is attached." in body
    start = (now - dt.timedelta(seconds=2)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    assert f"Play that moment: {WEB_URL}/recordings/play?camera=porch&start={start}" in body

    setup.sighting("porch", ALICE, now, key="a-f1", end=now + dt.timedelta(seconds=9))
    assert setup.poll() == 0  # the final report updates the row: never a second email
    wait_for(lambda: alert_statuses(setup.engine, "face") == ["sent"], 10, "the alert sent")
    assert len(stub.requests) == 1


def test_unknown_faces_alert_only_at_their_cameras_within_the_faces_armed_hours(
        setup: Setup, stub: SendGridStub) -> None:
    setup.camera("yard", unknown_alerts=True)
    setup.camera("porch")
    now = utcnow()
    setup.setting("motion.timezone", "UTC")
    setup.setting("faces.armed_hours", _hours_without(now))
    setup.setting("motion.armed_hours", _hours_with(now))  # motion's hours are not the faces'
    setup.sighting("yard", STRANGER, now)
    assert setup.poll() == 0
    setup.setting("faces.armed_hours.yard", _hours_with(now))  # the yard's own hours win
    setup.sighting("yard", STRANGER, now)
    setup.sighting("porch", STRANGER, now)  # unknown faces are not wanted at the porch
    assert setup.poll() == 1
    mail = stub.wait_for(lambda m: m.get("custom_args", {}).get("kind") == "face").json
    assert mail["subject"] == "[NVR] unknown face at yard"
    assert "camera yard saw a face it does not know" in _body(mail)
    setup.setting("faces.armed_hours.yard", "")
    setup.setting("motion.away", "1")  # the site's "away" arms unknown faces too
    setup.sighting("yard", STRANGER, now)
    assert setup.poll() == 1


def test_old_and_erased_sightings_are_not_emailed_and_erased_crops_are_deleted(
        setup: Setup) -> None:
    setup.camera("yard", unknown_alerts=True)
    setup.sighting("yard", STRANGER, utcnow() - dt.timedelta(hours=1))  # an edge's spool, late
    assert setup.poll() == 0
    erased = setup.sighting("yard", STRANGER)
    with Session(setup.engine) as session:
        crop = setup.catalog.storage.root / session.get(FaceSighting, erased).crop_path
        session.execute(update(FaceSighting).where(FaceSighting.id == erased).values(
            erased_at=utcnow(), embedding=None))
        session.commit()
    assert crop.exists()
    assert setup.poll() == 0
    assert crop.exists()  # the HealthMonitor's face_crops job deletes it, not the alerts
    assert sweep_erased(setup.catalog) == 1
    assert not crop.exists()
    with Session(setup.engine) as session:
        assert session.get(FaceSighting, erased).crop_path is None


def test_face_alerts_have_a_debounce_window_per_camera_of_their_own() -> None:
    assert debounce_key("face", "yard") == "face:yard" != debounce_key("offline", "yard")
