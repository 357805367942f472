"""The alert center against a real SQLite catalog, the real sendgrid client and a SendGrid stand-in."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from nvrlib.catalog import db
from nvrlib.catalog.models import Alert, Camera, Setting, utcnow
from recorder.config import AlertsConfig, alerts_config
from recorder.health.alerts import AlertCenter, AlertEvent, Debouncer, EmailState, debounce_key
from recorder.health.messages import Suppressed, iso_utc
from tests.support.postgres import create_database, postgres_cluster, postgres_unavailable_reason
from tests.support.procs import wait_for
from tests.support.requirements import require
from tests.support.sendgrid_stub import SendGridStub

OWNER = "owner@example.com"
SECOND = "second@example.com"


_databases = itertools.count()
# the tests that also run on PostgreSQL (the catalog URL a hub may be given)
BOTH_BACKENDS = pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture(scope="module")
def pg_cluster() -> Iterator[str]:
    """One throwaway PostgreSQL cluster for the module's PostgreSQL cases."""
    require(postgres_unavailable_reason())
    with postgres_cluster("nvr") as url:
        yield url


@pytest.fixture
def engine(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[sqlalchemy.Engine]:
    """A migrated catalog as the hub opens it: a SQLite file, or (parametrized) PostgreSQL."""
    if getattr(request, "param", "sqlite") == "postgresql":
        url = create_database(request.getfixturevalue("pg_cluster"), f"alerts{next(_databases)}")
    else:
        url = f"sqlite:///{tmp_path / 'nvr.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def stub() -> Iterator[SendGridStub]:
    """The SendGrid stand-in on 127.0.0.1; stopped at the end."""
    with SendGridStub(api_key="SG.test") as server:
        yield server


@pytest.fixture
def make_center(engine: sqlalchemy.Engine, stub: SendGridStub) -> Iterator[Callable[..., AlertCenter]]:
    """Start alert centers pointed at the stub, with fast retries; all are stopped at the end."""
    centers: list[AlertCenter] = []

    def make(**overrides: Any) -> AlertCenter:
        values: dict[str, Any] = dict(
            api_key="SG.test", api_host=stub.url, email_to=(OWNER, SECOND),
            email_from="nvr@example.com", send_timeout=0.5, retry_initial=0.1, retry_max=0.4,
            give_up_after=60.0, debounce_window=600.0, debounce_burst=3)
        values.update(overrides)
        center = AlertCenter(AlertsConfig(**values), engine)
        centers.append(center)
        center.start()
        return center

    yield make
    for center in centers:
        center.stop(timeout=2.0)


def alerts(engine: sqlalchemy.Engine) -> list[Alert]:
    """Every Alert row, oldest first."""
    with Session(engine, expire_on_commit=False) as session:
        return list(session.scalars(select(Alert).order_by(Alert.id)))


def alert_where(engine: sqlalchemy.Engine, **match: Any) -> Alert | None:
    """The first Alert row whose columns equal ``match``, if any."""
    for row in alerts(engine):
        if all(getattr(row, key) == value for key, value in match.items()):
            return row
    return None


def add_camera(engine: sqlalchemy.Engine, name: str, muted_until: dt.datetime | None = None) -> None:
    """Insert a camera row, as the catalog does when it first records one."""
    with Session(engine) as session:
        session.add(Camera(name=name, alerts_muted_until=muted_until))
        session.commit()


def event(kind: str, camera: str | None, **details: Any) -> AlertEvent:
    """An alert event happening now."""
    return AlertEvent(kind=kind, camera=camera, at=utcnow(), details=details)


# -- what SendGrid receives -----------------------------------------------------------------

def _cases(now: dt.datetime) -> list[tuple[str, str | None, dict[str, Any], str, list[str]]]:
    ago = lambda seconds: iso_utc(now - dt.timedelta(seconds=seconds))  # noqa: E731
    return [
        ("new_camera", "driveway",
         {"location": "Front gate", "peer": "10.0.0.7", "camera_kind": "push", "approval": "pending"},
         "[NVR] new camera driveway connected from 10.0.0.7, waiting for approval",
         ["Location: Front gate", "waiting for an admin to approve it"]),
        ("offline", "driveway",
         {"reason": "clean_shutdown", "peer": "10.0.0.7", "since": ago(3), "last_segment_end": ago(4),
          "detail": "the edge sent the end of its stream"},
         "[NVR] driveway offline: edge shut down",
         ["the edge shut down cleanly", f"Offline since: {ago(3)}",
          f"Last recorded footage ends: {ago(4)}", "Edge address: 10.0.0.7"]),
        ("offline", "driveway",
         {"reason": "connection_lost", "peer": "10.0.0.7", "since": ago(3), "last_segment_end": ago(4),
          "detail": "connection reset by peer"},
         "[NVR] driveway offline: edge connection lost",
         ["the connection to the edge was lost", "Detail: connection reset by peer"]),
        ("offline", "driveway",
         {"reason": "stalled", "peer": "10.0.0.7", "since": ago(30), "last_segment_end": ago(30),
          "detail": "no data for 15 s"},
         "[NVR] driveway offline: stream stalled",
         ["the edge stayed connected but sent nothing", f"Offline since: {ago(30)}"]),
        ("online", "driveway",
         {"offline_since": ago(125), "outage_seconds": 125, "reason": "connection_lost",
          "peer": "10.0.0.7"},
         "[NVR] driveway back online after 2 min 5 s",
         [f"Offline from: {ago(125)}", f"Back online at: {ago(0)}", "Outage length: 2 min 5 s",
          "Why it was offline: the connection to the edge was lost"]),
        ("failing", "driveway",
         {"failures": 10, "last_error": "ffmpeg exited with status 1", "retry_in_seconds": 300},
         "[NVR] driveway failing: 10 failures in a row",
         ["Last error: ffmpeg exited with status 1", "Next try in: 5 min"]),
        ("stalled", "driveway", {"seconds_without_segment": 35, "restarts": 2},
         "[NVR] driveway stalled: no new footage for 35 s, restarted", ["Restarts so far: 2"]),
        ("disk_low", None,
         {"free_bytes": 4_200_000_000, "total_bytes": 100_000_000_000, "free_percent": 4.2,
          "threshold_percent": 10},
         "[NVR] disk space low: 4.2 GB free (4.2 %)",
         ["4.2 GB free (4.2 % of 100.0 GB)", "Alert threshold: 10 % free"]),
    ]


@pytest.mark.parametrize("case", range(len(_cases(utcnow()))),
                         ids=[f"{c[0]}-{c[2].get('reason', '')}".strip("-") for c in _cases(utcnow())])
def test_each_alert_kind_reaches_sendgrid_with_camera_subject_and_times(
        case: int, make_center: Callable[..., AlertCenter], stub: SendGridStub,
        engine: sqlalchemy.Engine) -> None:
    """Each kind of alert is emailed with its recipients, subject, camera and times in the body."""
    now = utcnow()
    kind, camera, details, subject, fragments = _cases(now)[case]
    center = make_center()
    center.notify(AlertEvent(kind, camera, now, details))

    mail = stub.wait_for(lambda j: j["custom_args"]["kind"] == kind).json
    row = wait_for(lambda: alert_where(engine, kind=kind, status="sent"), 5, "the row marked sent")
    assert mail["personalizations"] == [{"to": [{"email": OWNER}, {"email": SECOND}]}]
    assert mail["from"] == {"email": "nvr@example.com"}
    assert mail["subject"] == subject == row.subject
    assert mail["content"][0]["type"] == "text/plain"
    body = mail["content"][0]["value"]
    assert body == row.body
    assert f"When: {iso_utc(now)} (hub time {now.astimezone():%Y-%m-%d %H:%M:%S}" in body
    assert (f"Camera: {camera}" in body) == (camera is not None)
    for fragment in fragments:
        assert fragment in body
    expected_args = {"alert_id": str(row.id), "kind": kind}
    if camera:
        expected_args["camera"] = camera
    assert mail["custom_args"] == expected_args
    assert mail["categories"] == ["nvr-alert", kind]
    assert row.attempts == 1 and row.sent_at is not None and row.recipients == f"{OWNER},{SECOND}"
    assert json.loads(row.details) == details


@BOTH_BACKENDS
def test_muted_camera_alerts_are_stored_but_not_emailed(
        make_center: Callable[..., AlertCenter], stub: SendGridStub, engine: sqlalchemy.Engine) -> None:
    """A camera muted by an admin gets 'muted' rows; an expired mute and other cameras still mail."""
    now = utcnow()
    add_camera(engine, "driveway", muted_until=now + dt.timedelta(hours=1))
    add_camera(engine, "yard", muted_until=now - dt.timedelta(minutes=1))
    add_camera(engine, "porch")
    center = make_center()
    for camera in ("driveway", "yard", "porch"):
        center.notify(event("offline", camera, reason="connection_lost"))

    stub.wait_for(lambda j: j["custom_args"].get("camera") == "porch")
    stub.wait_for(lambda j: j["custom_args"].get("camera") == "yard")
    assert alert_where(engine, camera="driveway").status == "muted"
    assert sorted(r.json["custom_args"]["camera"] for r in stub.requests) == ["porch", "yard"]


@BOTH_BACKENDS
def test_flapping_camera_sends_burst_then_one_summary(
        make_center: Callable[..., AlertCenter], stub: SendGridStub, engine: sqlalchemy.Engine) -> None:
    """Ten offline/online alerts in a 2-s window send 2 emails and 1 summary; the rest are suppressed."""
    center = make_center(debounce_burst=2, debounce_window=2.0)
    started = time.monotonic()
    for i in range(10):
        kind = "offline" if i % 2 == 0 else "online"
        center.notify(event(kind, "driveway", reason="connection_lost", outage_seconds=3))
        if i == 4:  # another camera keeps its own window
            center.notify(event("offline", "porch", reason="clean_shutdown"))
    center.flush(5)

    summary = stub.wait_for(lambda j: j["custom_args"]["kind"] == "summary", timeout=10)
    wait_for(lambda: alert_where(engine, kind="summary", status="sent"), 5, "the summary row sent")
    assert summary.at - started >= 1.9  # not before the window ended
    subject = summary.json["subject"]
    assert subject == ("[NVR] driveway: 8 more alerts in the last 2 s (4 offline, 4 online); "
                       "last: online")
    body = summary.json["content"][0]["value"]
    assert body.count("\n- ") == 8 and "driveway offline: edge connection lost" in body
    assert summary.json["custom_args"]["camera"] == "driveway"

    rows = alerts(engine)
    driveway = [r for r in rows if r.camera == "driveway" and r.kind != "summary"]
    assert [r.status for r in driveway] == ["sent"] * 2 + ["suppressed"] * 8
    assert alert_where(engine, camera="porch").status == "sent"
    details = json.loads(alert_where(engine, kind="summary").details)
    assert details["count"] == 8 and details["kinds"] == {"offline": 4, "online": 4}
    assert details["window_seconds"] == 2.0
    subjects = sorted(r.json["subject"] for r in stub.accepted)
    assert len(subjects) == 4, subjects  # driveway x2, porch, summary: not ten


@BOTH_BACKENDS
def test_sendgrid_500_is_retried_with_backoff_until_delivered(
        make_center: Callable[..., AlertCenter], stub: SendGridStub, engine: sqlalchemy.Engine,
        caplog: pytest.LogCaptureFixture) -> None:
    """SendGrid answering 500 leaves the alert pending; it is delivered once SendGrid recovers."""
    caplog.set_level(logging.DEBUG)
    stub.mode = "error"
    center = make_center()
    center.notify(event("offline", "driveway", reason="connection_lost"))
    first, second, third = stub.wait_requests(3)[:3]
    row = alert_where(engine, kind="offline")
    assert row.status == "pending" and "HTTP 500" in row.last_error
    stub.mode = "ok"

    stub.wait_for()
    row = wait_for(lambda: alert_where(engine, kind="offline", status="sent"), 5, "the row sent")
    assert row.attempts >= 4 and "HTTP 500" in row.last_error
    assert second.at - first.at >= 0.09 and third.at - second.at >= 0.19  # back-off doubles
    # the key travels only in the Authorization header: never in a log line or a row
    assert "SG.test" not in caplog.text
    assert not [r for r in alerts(engine) if "SG.test" in column_values(r)]


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
def test_an_alert_the_database_refuses_is_stored_and_sent_once_it_takes_it_again(
        make_center: Callable[..., AlertCenter], stub: SendGridStub, engine: sqlalchemy.Engine,
        caplog: pytest.LogCaptureFixture) -> None:
    """A store that fails (out of descriptors, the disk, a lost server) loses no alert."""
    caplog.set_level(logging.INFO)
    center = make_center()
    with engine.begin() as conn:  # a real failure of the INSERT: the table is not there
        conn.execute(sqlalchemy.text("ALTER TABLE alerts RENAME TO alerts_away"))
    center.notify(event("stalled", "porch", seconds_without_segment=14.0))
    center.notify(event("failing", "porch", restarts=3))
    wait_for(lambda: "could not store the stalled alert for porch" in caplog.text, 10,
             "the failed store to be logged")
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("ALTER TABLE alerts_away RENAME TO alerts"))
    center.flush(10)
    rows = alerts(engine)
    assert [(r.kind, r.camera) for r in rows] == [("stalled", "porch"), ("failing", "porch")]
    # counted once by the debouncer though stored twice over: both go out by email
    wait_for(lambda: all(r.status == "sent" for r in alerts(engine)), 10, "both sent")
    assert len(stub.wait_requests(2)) == 2
    assert caplog.text.count("could not store the stalled alert") == 1  # not one per retry


def column_values(row: Alert) -> str:
    """Every column of a row as text, to search for what must never be stored."""
    return " ".join(str(getattr(row, c.name)) for c in Alert.__table__.columns)


def test_hanging_sendgrid_is_abandoned_after_send_timeout_and_stalls_nothing(
        make_center: Callable[..., AlertCenter], stub: SendGridStub, engine: sqlalchemy.Engine) -> None:
    """A request SendGrid never answers is dropped after send_timeout and retried; storing goes on."""
    stub.mode = "hang"
    center = make_center(send_timeout=1.5)
    center.notify(event("offline", "driveway", reason="connection_lost"))
    wait_for(stub.in_flight, 5, "the first request held by the stub")

    began = time.monotonic()
    center.notify(event("offline", "porch", reason="clean_shutdown"))
    notify_seconds = time.monotonic() - began
    center.flush(2)
    stored_seconds = time.monotonic() - began
    assert notify_seconds < 0.05 and stored_seconds < 1.0
    assert stub.in_flight()  # the first request is still hanging, yet the second alert is stored
    assert alert_where(engine, camera="porch").status == "pending"

    wait_for(lambda: stub.requests[0].abandoned, 5, "the client to give up the first request")
    held = stub.requests[0].answered_at - stub.requests[0].at
    assert 1.4 <= held < 2.5
    stub.mode = "ok"
    stub.wait_for(lambda j: j["custom_args"]["camera"] == "driveway")
    stub.wait_for(lambda j: j["custom_args"]["camera"] == "porch")
    row = wait_for(lambda: alert_where(engine, camera="driveway", status="sent"), 5, "driveway sent")
    assert row.attempts >= 2 and "did not answer within 1.5 s" in row.last_error


@pytest.mark.parametrize("key, mode, status, text", [
    ("SG.wrong", "ok", 401, "authorization grant is invalid"),
    ("SG.test", "bad_request", 400, "stub mode bad_request"),
])
def test_rejected_by_sendgrid_fails_at_once(
        key: str, mode: str, status: int, text: str, make_center: Callable[..., AlertCenter],
        stub: SendGridStub, engine: sqlalchemy.Engine) -> None:
    """A bad key or a bad request is not retried: the alert is failed with SendGrid's answer."""
    stub.mode = mode
    center = make_center(api_key=key)
    center.notify(event("offline", "driveway", reason="connection_lost"))
    row = wait_for(lambda: alert_where(engine, status="failed"), 5, "the alert marked failed")
    assert row.attempts == 1 and f"HTTP {status}" in row.last_error and text in row.last_error
    center.stop(timeout=2)
    assert [r.status for r in stub.requests] == [status]


def test_without_api_key_alerts_are_logged_and_stored(
        make_center: Callable[..., AlertCenter], stub: SendGridStub, engine: sqlalchemy.Engine,
        caplog: pytest.LogCaptureFixture) -> None:
    """With no SENDGRID_API_KEY the hub says so once, then logs and stores each alert."""
    caplog.set_level(logging.INFO, logger="recorder.health.alerts")
    center = make_center(api_key=None)
    center.notify(event("offline", "driveway", reason="connection_lost"))
    center.notify(event("online", "driveway", outage_seconds=5, reason="connection_lost"))
    center.flush(5)

    assert [r.status for r in alerts(engine)] == ["logged", "logged"]
    off = [r for r in caplog.records if "email alerts are off" in r.getMessage()]
    assert [(r.levelno, r.getMessage()) for r in off] == [
        (logging.WARNING, "email alerts are off: no SENDGRID_API_KEY")]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("[NVR] driveway offline: edge connection lost" in m for m in warned)
    assert any("[NVR] driveway back online after 5 s" in m for m in warned)
    assert center.email_state() == EmailState(False, "config", (OWNER, SECOND))
    center.stop(timeout=2)
    assert stub.requests == []


def test_start_says_where_email_goes(
        make_center: Callable[..., AlertCenter], stub: SendGridStub,
        caplog: pytest.LogCaptureFixture) -> None:
    """With a key the hub logs one line naming how many addresses and which API host."""
    caplog.set_level(logging.INFO, logger="recorder.health.alerts")
    make_center()
    lines = [r.getMessage() for r in caplog.records if "email alerts" in r.getMessage()]
    assert lines == [f"email alerts go to 2 address(es) via {stub.url}"]


@BOTH_BACKENDS
def test_test_email_inserted_by_the_web_app_is_sent(
        make_center: Callable[..., AlertCenter], stub: SendGridStub, engine: sqlalchemy.Engine) -> None:
    """A pending 'test' row another process inserts is picked up by polling and emailed."""
    make_center()
    web_engine = db.make_engine(str(engine.url))  # the web app's own connection pool
    try:
        with Session(web_engine) as session:
            session.execute(insert(Alert).values(kind="test", status="pending", requested_by="admin"))
            session.commit()
    finally:
        web_engine.dispose()

    mail = stub.wait_for(lambda j: j["custom_args"]["kind"] == "test").json
    assert mail["subject"] == "[NVR] test email"
    assert "Requested by: admin" in mail["content"][0]["value"]
    row = wait_for(lambda: alert_where(engine, kind="test", status="sent"), 5, "the test row sent")
    assert row.subject == "[NVR] test email" and row.recipients == f"{OWNER},{SECOND}"


def test_two_hubs_on_one_catalog_email_each_alert_once(
        make_center: Callable[..., AlertCenter], stub: SendGridStub, engine: sqlalchemy.Engine) -> None:
    """Both hubs' senders poll the same pending rows: a claim (a lease) makes one of them send."""
    make_center()
    make_center()
    with Session(engine) as session:
        session.execute(insert(Alert), [{"kind": "test", "status": "pending",
                                         "requested_by": f"admin{n}"} for n in range(12)])
        session.commit()
    wait_for(lambda: len([a for a in alerts(engine) if a.status == "sent"]) == 12, 10,
             "all twelve sent")
    senders = sorted(r.json["content"][0]["value"].split("Requested by: ")[1].split()[0]
                     for r in stub.accepted)
    assert senders == sorted(f"admin{n}" for n in range(12))  # each once


def test_stop_returns_within_its_bound_while_sendgrid_hangs(
        make_center: Callable[..., AlertCenter], stub: SendGridStub, engine: sqlalchemy.Engine) -> None:
    """stop() keeps its time limit even when a request hangs far longer than that."""
    stub.mode = "hang"
    center = make_center(send_timeout=30.0)
    center.notify(event("offline", "driveway", reason="hub_stopped"))
    wait_for(stub.in_flight, 5, "the request held by the stub")

    began = time.monotonic()
    center.stop(timeout=1.0)
    assert time.monotonic() - began < 1.5
    assert alert_where(engine, kind="offline").status == "pending"  # sent on the next start
    stub.mode = "ok"  # the abandoned request still completes, and is recorded
    wait_for(lambda: alert_where(engine, kind="offline", status="sent"), 5, "the held mail sent")


def test_stop_stores_everything_queued(
        make_center: Callable[..., AlertCenter], engine: sqlalchemy.Engine) -> None:
    """Alerts notified just before stop() are all in the database after it."""
    center = make_center(api_key=None)
    for i in range(30):
        center.notify(event("new_camera", f"cam{i}", peer="10.0.0.9", approval="approved"))
    center.stop(timeout=5)
    assert len([row for row in alerts(engine) if row.kind == "new_camera"]) == 30


def test_new_cameras_are_emailed_once_then_summarised_across_cameras(
        make_center: Callable[..., AlertCenter], stub: SendGridStub, engine: sqlalchemy.Engine) -> None:
    """Twenty invented camera names send debounce_burst emails and one summary, not twenty."""
    center = make_center(debounce_window=2.0)
    for i in range(20):
        center.notify(event("new_camera", f"fake{i:02d}", peer="10.0.0.66", approval="pending",
                            camera_kind="push", location=""))
    center.flush(5)
    summary = stub.wait_for(lambda j: j["custom_args"]["kind"] == "summary", timeout=10)
    assert summary.json["subject"] == ("[NVR] new cameras: 17 more alerts in the last 2 s "
                                       "(17 new_camera); last: new_camera")
    body = summary.json["content"][0]["value"]
    assert "new camera fake19 connected from 10.0.0.66" in body and "Camera:" not in body
    rows = [row for row in alerts(engine) if row.kind == "new_camera"]
    assert [row.status for row in rows] == ["sent"] * 3 + ["suppressed"] * 17
    assert alert_where(engine, kind="summary").camera is None
    wait_for(lambda: len(stub.accepted) == 4, 5, "four emails")
    assert sorted(r.json["custom_args"]["kind"] for r in stub.accepted) == \
        ["new_camera"] * 3 + ["summary"]


def test_stop_stores_the_summary_of_an_open_window(
        make_center: Callable[..., AlertCenter], engine: sqlalchemy.Engine) -> None:
    """Alerts held back by a window that is still open are summarised when the hub stops."""
    center = make_center(api_key=None, debounce_burst=1, debounce_window=600.0)
    for _ in range(3):
        center.notify(event("disk_low", None, free_bytes=1e9, total_bytes=1e11, free_percent=1.0,
                            threshold_percent=10))
    center.stop(timeout=5)
    rows = alerts(engine)
    assert [r.status for r in rows] == ["logged", "suppressed", "suppressed", "logged"]
    assert rows[-1].kind == "summary" and rows[-1].subject.startswith(
        "[NVR] disk space low: 2 more alerts in the last 10 min (2 disk_low)")


def test_alert_not_delivered_in_time_is_given_up(
        make_center: Callable[..., AlertCenter], stub: SendGridStub, engine: sqlalchemy.Engine) -> None:
    """An alert SendGrid keeps refusing with 5xx is marked failed after give_up_after."""
    stub.mode = "error"
    center = make_center(give_up_after=1.0)
    notified = time.monotonic()
    center.notify(event("offline", "driveway", reason="connection_lost"))
    row = wait_for(lambda: alert_where(engine, status="failed"), 5, "the alert given up")
    assert time.monotonic() - notified >= 0.9
    assert row.last_error.startswith("gave up after") and "HTTP 500" in row.last_error
    assert row.attempts >= 2


# -- recipients -------------------------------------------------------------------------------

def set_web_recipients(engine: sqlalchemy.Engine, value: str) -> None:
    """Save the alert addresses as the web app's settings page does."""
    with Session(engine) as session:
        session.merge(Setting(key="alerts.email_to", value=value, updated_by="admin"))
        session.commit()


def test_addresses_set_in_the_web_app_beat_the_config_file(
        make_center: Callable[..., AlertCenter], stub: SendGridStub, engine: sqlalchemy.Engine) -> None:
    """Addresses an admin saved in the web app are used at send time instead of the file's."""
    center = make_center(email_to=("file@example.com",))
    assert center.email_state() == EmailState(True, "config", ("file@example.com",))
    set_web_recipients(engine, "web1@example.com, web2@example.com,not-an-address")
    assert center.email_state() == EmailState(True, "web", ("web1@example.com", "web2@example.com"))
    center.notify(event("offline", "driveway", reason="connection_lost"))
    mail = stub.wait_for().json
    assert mail["personalizations"][0]["to"] == [{"email": "web1@example.com"},
                                                 {"email": "web2@example.com"}]


def test_addresses_from_the_environment_beat_the_web_app(
        make_center: Callable[..., AlertCenter], stub: SendGridStub, engine: sqlalchemy.Engine) -> None:
    """ALERT_EMAIL_TO wins over the web app's addresses."""
    set_web_recipients(engine, "web1@example.com")
    center = make_center(email_to=("env@example.com",), email_to_from_environment=True)
    assert center.email_state() == EmailState(True, "environment", ("env@example.com",))
    center.notify(event("offline", "driveway", reason="connection_lost"))
    assert stub.wait_for().json["personalizations"][0]["to"] == [{"email": "env@example.com"}]


def test_no_recipients_fails_the_alert(
        make_center: Callable[..., AlertCenter], stub: SendGridStub, engine: sqlalchemy.Engine) -> None:
    """With no address anywhere the alert is failed, saying so, and nothing is sent."""
    center = make_center(email_to=())
    assert center.email_state() == EmailState(True, "none", ())
    center.notify(event("offline", "driveway", reason="connection_lost"))
    row = wait_for(lambda: alert_where(engine, status="failed"), 5, "the alert failed")
    assert row.last_error == "no recipients configured"
    assert stub.requests == []


# -- the debouncer on its own -------------------------------------------------------------------

@pytest.mark.parametrize("kind, camera, key", [
    ("offline", "driveway", "camera:driveway"),
    ("online", "driveway", "camera:driveway"),
    ("failing", "driveway", "camera:driveway"),
    ("stalled", "driveway", "camera:driveway"),
    ("retention_short", "driveway", "camera:driveway"),
    ("retention_short", None, "kind:retention_short"),
    ("disk_low", None, "kind:disk_low"),
    ("disk_emergency", None, "kind:disk_emergency"),
    ("summary", "driveway", "kind:summary"),
    ("new_camera", "driveway", "kind:new_camera"),
    ("test", None, None),
])
def test_debounce_key(kind: str, camera: str | None, key: str | None) -> None:
    """Camera alerts debounce per camera, hub-wide ones and new cameras per kind; tests never."""
    assert debounce_key(kind, camera) == key


def test_debouncer_window_counts_and_closes_on_time() -> None:
    """A window lets ``burst`` through, holds the rest, and hands them over when it ends."""
    start = utcnow()
    debouncer = Debouncer(window_seconds=600, burst=2)
    at = lambda s: start + dt.timedelta(seconds=s)  # noqa: E731
    item = lambda s: Suppressed(at(s), "offline", "driveway offline")  # noqa: E731
    assert [debouncer.admit("camera:driveway", "driveway", at(s), item(s)) for s in (0, 1, 2, 3)] \
        == [True, True, False, False]
    assert debouncer.next_deadline() == at(600)
    assert debouncer.due(at(599)) == []
    (window,) = debouncer.due(at(600))
    assert window.camera == "driveway" and [s.at for s in window.suppressed] == [at(2), at(3)]
    assert debouncer.next_deadline() is None
    assert debouncer.admit("camera:driveway", "driveway", at(601), item(601)) is True


@pytest.mark.parametrize("section, environ, from_environment", [
    ({"email_to": "file@example.com"}, {}, False),
    ({"email_to": "file@example.com"}, {"ALERT_EMAIL_TO": "env@example.com"}, True),
    ({}, {"ALERT_EMAIL_TO": "  "}, False),
])
def test_config_remembers_whether_addresses_came_from_the_environment(
        section: dict[str, str], environ: dict[str, str], from_environment: bool) -> None:
    """Only a non-empty ALERT_EMAIL_TO makes the config's addresses beat the web app's."""
    assert alerts_config(section, environ).email_to_from_environment is from_environment
