"""Motion alerts: the schedule (armed hours, away), the hub's job that reads motion_events, and
the emails that reach a SendGrid stand-in with the snapshot attached and a link to play it."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from nvrlib.catalog.models import Alert, Camera, MotionEvent, Setting, utcnow
from nvrlib.motion_schedule import (
    MotionSchedule, ScheduleError, format_armed_hours, parse_armed_hours, schedule_from_settings,
)
from recorder.config import AlertsConfig, CameraConfig, HubConfig, build_config
from recorder.errors import ConfigError
from recorder.health.alerts import AlertCenter, AlertEvent
from recorder.health.motion_alerts import SNAPSHOT_WAIT, MotionAlerts, snapshot_attacher
from recorder.store.catalog import Catalog
from recorder.store.storage import Storage
from tests.support.procs import wait_for
from tests.support.sendgrid_stub import SendGridStub, attachments_of

from .test_alerts import engine, stub  # noqa: F401  (fixtures: a migrated catalog, the stand-in)

UTC = dt.timezone.utc
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) + b"\xff\xd9"
WEB_URL = "http://nvr.local:8080"

# -- the schedule --------------------------------------------------------------------------------


@pytest.mark.parametrize("text,ranges", [
    ("", ()), ("22:00-06:00", ((1320, 360),)), ("8:00 - 9:30; 12:00-13:00", ((480, 570),
                                                                           (720, 780))),
    ("00:00-24:00", ((0, 1440),)),
])
def test_armed_hours_are_read(text: str, ranges: tuple[tuple[int, int], ...]) -> None:
    assert parse_armed_hours(text) == ranges


@pytest.mark.parametrize("text", ["late", "25:00-06:00", "10:60-11:00", "06:00-06:00",
                                  "24:30-01:00", "9-5", "22:00-06:00,"])
def test_bad_armed_hours_are_refused(text: str) -> None:
    with pytest.raises(ScheduleError):
        parse_armed_hours(text)


@given(st.lists(st.tuples(st.integers(0, 1439), st.integers(0, 1439)).filter(
    lambda r: r[0] != r[1]), max_size=12))
def test_stored_hours_read_back_the_same(ranges: list[tuple[int, int]]) -> None:
    assert parse_armed_hours(format_armed_hours(ranges)) == tuple(ranges)


def _at(hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 3, 1, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize("hour,armed", [(21, False), (22, True), (23, True), (2, True),
                                        (5, True), (6, False), (12, False)])
def test_hours_across_midnight(hour: int, armed: bool) -> None:
    schedule = MotionSchedule(all_hours=parse_armed_hours("22:00-06:00"), timezone=UTC)
    assert schedule.armed("porch", _at(hour)) is armed


def test_away_arms_all_day_and_a_cameras_own_hours_win() -> None:
    schedule, problems = schedule_from_settings({
        "motion.armed_hours": "22:00-06:00", "motion.armed_hours.garage": "08:00-18:00",
        "motion.armed_hours.porch": "", "motion.timezone": "Europe/Paris"})
    assert problems == []
    assert schedule.armed("porch", _at(21, 30))  # 22:30 in Paris
    assert not schedule.armed("porch", _at(11))
    assert schedule.armed("garage", _at(11)) and not schedule.armed("garage", _at(21, 30))
    away, _ = schedule_from_settings({"motion.armed_hours": "22:00-06:00", "motion.away": "1"})
    assert away.armed("porch", _at(11))


def test_an_unreadable_row_is_reported_and_ignored() -> None:
    schedule, problems = schedule_from_settings({"motion.armed_hours": "soon",
                                                 "motion.timezone": "Mars/Olympus"})
    assert len(problems) == 2 and schedule.all_hours == () and schedule.timezone is None


# -- the config keys -----------------------------------------------------------------------------

def test_the_config_file_sets_motion_alerts_per_camera_and_the_web_url() -> None:
    config = build_config({"cameras": [{"name": "porch", "motion_alerts": True}],
                           "alerts": {"web_url": "http://nvr.local:8080/"}}, {}, {})
    assert config.camera("porch").motion_alerts is True
    assert config.alerts.web_url == WEB_URL


@pytest.mark.parametrize("values,key", [
    ({"cameras": [{"name": "porch", "motion_alerts": "yes"}]}, "cameras[0].motion_alerts"),
    ({"alerts": {"web_url": "nvr.local:8080"}}, "alerts.web_url"),
])
def test_bad_motion_keys_are_named(values: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        build_config(values, {}, {})


# -- the hub's job, and the emails ---------------------------------------------------------------

class Setup:
    """A hub's motion alerts minus the hub: its catalog, alert center and MotionAlerts job."""

    def __init__(self, engine: sqlalchemy.Engine, root: Path, stub: SendGridStub,
                 cameras: tuple[CameraConfig, ...] = (), web_url: str | None = WEB_URL,
                 burst: int = 3) -> None:
        self.engine = engine
        self.storage = Storage(root)
        root.mkdir(parents=True, exist_ok=True)
        alerts = AlertsConfig(api_key="SG.test", api_host=stub.url, email_to=("o@example.com",),
                              email_from="nvr@example.com", send_timeout=2.0,
                              retry_initial=0.1, debounce_burst=burst, web_url=web_url)
        self.config = HubConfig(alerts=alerts, cameras=cameras)
        self.center = AlertCenter(alerts, engine, attach=snapshot_attacher(self.storage, "main"))
        self.job = MotionAlerts(Catalog(engine, self.storage), self.config, self.raise_alert)
        self.job.run_once()  # the first poll marks where "new" starts

    def raise_alert(self, kind: str, camera: str | None, details: dict[str, object]) -> None:
        """What Hub.raise_alert does."""
        self.center.notify(AlertEvent(kind, camera, utcnow(), {**details, "hub": "main"}))

    def camera(self, name: str, alerts: bool = True) -> None:
        """Add a camera with its motion alerts on or off."""
        with Session(self.engine) as session:
            session.add(Camera(name=name, motion_alerts=alerts))
            session.commit()

    def motion(self, camera: str, start: dt.datetime | None = None, ongoing: bool = False,
               snapshot: bool = True) -> int:
        """Store a motion event as the hub does when an edge reports one (and its JPEG)."""
        start = start or utcnow()
        path = f"{camera}/motion/{start:%H%M%S%f}.jpg" if snapshot else None
        if path:
            (self.storage.root / path).parent.mkdir(parents=True, exist_ok=True)
            (self.storage.root / path).write_bytes(JPEG)
        with Session(self.engine) as session:
            camera_id = session.scalar(select(Camera.id).where(Camera.name == camera))
            row = MotionEvent(camera_id=camera_id, event_key=f"{camera}-{start.timestamp()}",
                              start_time=start, end_time=None if ongoing else start +
                              dt.timedelta(seconds=8), score=0.125, box_x=0.25, box_y=0.5,
                              box_w=0.25, box_h=0.25, snapshot_path=path, source="edge")
            session.add(row)
            session.commit()
            return row.id

    def setting(self, key: str, value: str) -> None:
        """Store a settings row as the web app does."""
        with Session(self.engine) as session:
            session.merge(Setting(key=key, value=value))
            session.commit()

    def poll(self) -> int:
        """Run the job once and wait until what it raised is stored."""
        return run_job(self.job, self.center)

    def statuses(self) -> list[str]:
        """The status of each motion alert, oldest first."""
        return alert_statuses(self.engine, "motion")


def run_job(job: Any, center: AlertCenter) -> int:
    """Run an alert job once and wait until what it raised is stored; return how many."""
    raised = job.run_once()
    center.flush(5.0)
    return raised


def alert_statuses(engine: sqlalchemy.Engine, kind: str) -> list[str]:
    """The delivery status of each alert of ``kind``, oldest first."""
    with Session(engine) as session:
        return list(session.scalars(select(Alert.status).where(Alert.kind == kind)
                                    .order_by(Alert.id)))


@pytest.fixture
def make_setup(engine: sqlalchemy.Engine, tmp_path: Path,
               stub: SendGridStub) -> Iterator[Callable[..., Setup]]:
    """Make a Setup; its alert center is started, and stopped at the end."""
    made: list[Setup] = []

    def make(**kwargs: Any) -> Setup:
        setup = Setup(engine, tmp_path / "recordings", stub, **kwargs)
        setup.center.start()
        made.append(setup)
        return setup

    yield make
    for setup in made:
        setup.center.stop(timeout=2.0)


def _body(mail: dict[str, Any]) -> str:
    return next(part["value"] for part in mail["content"] if part["type"] == "text/plain")


def test_armed_motion_sends_one_email_with_the_snapshot_and_the_link(
        make_setup: Callable[..., Setup], stub: SendGridStub) -> None:
    setup = make_setup()
    setup.camera("porch")
    now = utcnow()
    setup.setting("motion.armed_hours", f"{now:%H}:00-{(now + dt.timedelta(hours=1)):%H}:00")
    setup.setting("motion.timezone", "UTC")
    event_id = setup.motion("porch", now, ongoing=True)
    assert setup.poll() == 1
    mail = stub.wait_for(lambda m: m.get("custom_args", {}).get("kind") == "motion").json
    assert mail["subject"] == "[NVR] motion on porch"
    assert attachments_of(mail) == [(f"motion-{event_id}.jpg", "image/jpeg", JPEG)]
    start = (now - dt.timedelta(seconds=2)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    assert f"Play that moment: {WEB_URL}/recordings/play?camera=porch&start={start}" \
        in _body(mail)
    # the event ends (the same row is updated) and the job keeps polling: never a second email
    with Session(setup.engine) as session:
        session.get(MotionEvent, event_id).end_time = now + dt.timedelta(seconds=9)
        session.commit()
    assert setup.poll() == 0 and setup.poll() == 0
    wait_for(lambda: setup.statuses() == ["sent"], 10, "the alert marked sent")
    assert len(stub.requests) == 1


def test_no_email_outside_armed_hours_or_with_alerts_off(make_setup: Callable[..., Setup],
                                                         stub: SendGridStub) -> None:
    setup = make_setup()
    setup.camera("porch")
    setup.camera("yard", alerts=False)
    now = utcnow()
    later = now + dt.timedelta(hours=2)
    setup.setting("motion.armed_hours",
                  f"{later:%H}:00-{(later + dt.timedelta(hours=1)):%H}:00")
    setup.setting("motion.timezone", "UTC")
    setup.motion("porch", now)  # outside the armed hours
    setup.motion("yard", now)  # alerts off
    assert setup.poll() == 0
    setup.setting("motion.away", "1")  # away arms all day, but not a camera with alerts off
    setup.motion("yard", now + dt.timedelta(seconds=1))
    setup.motion("porch", now + dt.timedelta(seconds=1), snapshot=False)
    assert setup.poll() == 1
    mail = stub.wait_for().json
    assert mail["custom_args"]["camera"] == "porch" and "attachments" not in mail
    assert "No picture was taken" in _body(mail)


def test_the_config_file_wins_over_the_web_apps_switch(make_setup: Callable[..., Setup],
                                                       stub: SendGridStub) -> None:
    setup = make_setup(web_url=None, cameras=(CameraConfig("porch", motion_alerts=False),
                                              CameraConfig("yard", motion_alerts=True)))
    setup.camera("porch", alerts=True)
    setup.camera("yard", alerts=False)
    setup.motion("porch")
    setup.motion("yard")
    assert setup.poll() == 1
    mail = stub.wait_for().json
    assert mail["custom_args"]["camera"] == "yard"
    assert "No link to play it: set web_url under [alerts]" in _body(mail)


def test_a_burst_of_motion_is_debounced(make_setup: Callable[..., Setup],
                                        stub: SendGridStub) -> None:
    setup = make_setup(burst=2)
    setup.camera("porch")
    start = utcnow()
    for n in range(5):
        setup.motion("porch", start + dt.timedelta(seconds=n))
    assert setup.poll() == 5
    wait_for(lambda: setup.statuses().count("sent") == 2, 10, "two motion emails")
    assert sorted(setup.statuses()) == ["sent", "sent", "suppressed", "suppressed", "suppressed"]
    assert len(stub.requests) == 2
    with Session(setup.engine) as session:
        details = [json.loads(d) for d in session.scalars(select(Alert.details))]
    assert {d["event_id"] for d in details} == set(range(1, 6))


def test_an_old_event_reported_late_is_not_emailed(make_setup: Callable[..., Setup]) -> None:
    setup = make_setup()
    setup.camera("porch")
    setup.motion("porch", utcnow() - dt.timedelta(hours=1))
    assert setup.poll() == 0


def test_events_before_the_hub_started_are_not_emailed(
        engine: sqlalchemy.Engine, tmp_path: Path, stub: SendGridStub) -> None:
    first = Setup(engine, tmp_path / "recordings", stub)
    first.camera("porch")
    first.motion("porch")
    again = Setup(engine, tmp_path / "recordings", stub)  # a hub (re)started after it
    assert again.job.run_once() == 0


def test_an_alert_waits_for_the_picture_the_edge_sends_at_the_events_end(
        make_setup: Callable[..., Setup], stub: SendGridStub) -> None:
    setup = make_setup()
    setup.camera("porch")
    event_id = setup.motion("porch", ongoing=True, snapshot=False)  # the edge's start report
    assert setup.poll() == 0  # no picture yet: it waits
    path = "porch/motion/peak.jpg"
    (setup.storage.root / path).parent.mkdir(parents=True, exist_ok=True)
    (setup.storage.root / path).write_bytes(JPEG)
    with Session(setup.engine) as session:  # the end report: end time and the peak's picture
        row = session.get(MotionEvent, event_id)
        row.snapshot_path, row.end_time = path, row.start_time + dt.timedelta(seconds=4)
        session.commit()
    assert setup.poll() == 1 and setup.poll() == 0
    mail = stub.wait_for(lambda m: m.get("custom_args", {}).get("kind") == "motion").json
    assert attachments_of(mail) == [(f"motion-{event_id}.jpg", "image/jpeg", JPEG)]


def test_an_event_that_never_gets_a_picture_alerts_after_a_short_wait(
        make_setup: Callable[..., Setup]) -> None:
    setup = make_setup()
    setup.camera("porch")
    now = utcnow()
    setup.job.clock = lambda: now
    setup.motion("porch", now, ongoing=True, snapshot=False)
    assert setup.poll() == 0
    setup.job.clock = lambda: now + SNAPSHOT_WAIT
    assert setup.poll() == 1 and setup.poll() == 0
