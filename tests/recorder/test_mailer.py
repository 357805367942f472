"""Alert wording, and the SendGrid client wrapper against the real SendGrid stand-in."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator

import pytest

from recorder.health.messages import (
    REASONS, Suppressed, compose, compose_summary, duration_text, iso_utc, local_text,
)
from recorder.config import AlertsConfig
from recorder.health.mailer import Delivery, Mailer, Outgoing, build_mail
from tests.support.procs import free_port
from tests.support.sendgrid_stub import SendGridStub

UTC = dt.timezone.utc
AT = dt.datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)


@pytest.fixture
def stub() -> Iterator[SendGridStub]:
    """The SendGrid stand-in on 127.0.0.1; stopped at the end."""
    with SendGridStub(api_key="SG.test") as server:
        yield server


def outgoing(camera: str | None = "driveway") -> Outgoing:
    """A small alert email to one address."""
    return Outgoing(7, "offline", camera, "[NVR] driveway offline: edge connection lost",
                    "The connection to the edge was lost.\n", ("owner@example.com",))


def mailer(host: str, key: str = "SG.test", timeout: float = 0.5) -> Mailer:
    """A Mailer with a short request timeout."""
    return Mailer(AlertsConfig(api_key=key, api_host=host, email_from="nvr@example.com",
                               send_timeout=timeout))


# -- wording ------------------------------------------------------------------------------------

@pytest.mark.parametrize("seconds, text", [
    (0, "0 s"), (45, "45 s"), (60, "1 min"), (125, "2 min 5 s"), (3600, "1 h"),
    (3780, "1 h 3 min"), (86400, "1 d"), (2 * 86400 + 4 * 3600 + 59, "2 d 4 h"), (None, "an unknown time"),
])
def test_duration_text(seconds: float | None, text: str) -> None:
    """Lengths of time read the way people say them."""
    assert duration_text(seconds) == text


@pytest.mark.parametrize("reason", sorted(REASONS))
def test_offline_alert_says_why(reason: str) -> None:
    """Every outage reason has its own subject words and a sentence in the body."""
    short, sentence = REASONS[reason]
    message = compose("offline", "driveway", AT, {"reason": reason, "since": iso_utc(AT)}, "[NVR]")
    assert message.subject == f"[NVR] driveway offline: {short}"
    assert f"stopped recording: {sentence}." in message.body


def test_body_gives_utc_and_local_time() -> None:
    """A body states the event time in UTC ISO-8601 and in the hub's local time."""
    message = compose("online", "driveway", AT, {"outage_seconds": 125,
                                                 "offline_since": "2025-03-14T09:24:48Z"}, "[NVR]")
    assert f"When: 2025-03-14T09:26:53Z (hub time {local_text(AT)})" in message.body
    assert f"Offline from: 2025-03-14T09:24:48Z (hub time {local_text(AT - dt.timedelta(seconds=125))})" \
        in message.body


@pytest.mark.parametrize("kind, details, subject", [
    ("new_camera", {"peer": "10.0.0.7", "approval": "approved", "camera_kind": "pull"},
     "new camera driveway connected from 10.0.0.7"),
    ("disk_emergency", {"free_bytes": 5e8, "total_bytes": 1e11, "deleted_segments": 120,
                        "deleted_bytes": 3.4e9, "only_locked_left": True},
     "disk nearly full: deleted 120 oldest segments (3.4 GB)"),
    ("retention_short", {"configured_days": 30, "kept_days": 3.54, "cause": "budget"},
     "driveway keeps only 3.5 of 30 days"),
    ("test", {"requested_by": "admin"}, "test email"),
    ("something_new", {"x": 1}, "driveway: something_new"),
])
def test_subjects_of_other_kinds(kind: str, details: dict, subject: str) -> None:
    """Other kinds get a subject that says what happened, even a kind this hub does not know."""
    camera = None if kind in ("disk_emergency", "test") else "driveway"
    assert compose(kind, camera, AT, details, "[NVR]").subject == f"[NVR] {subject}"


def test_subject_has_no_line_break_and_fits_the_column() -> None:
    """Details cannot break the subject header or overflow Alert.subject."""
    message = compose("failing", "driveway", AT, {"failures": 3, "last_error": "x"}, "[NVR]\nx" * 60)
    assert "\n" not in message.subject and len(message.subject) <= 255


def test_summary_subject_counts_kinds_and_lists_every_held_alert() -> None:
    """A summary says how many alerts of which kinds were held back, and the last one's kind."""
    kinds = ["offline", "online"] * 3 + ["offline"]
    items = [Suppressed(AT + dt.timedelta(seconds=10 * i), kind, f"driveway {kind}")
             for i, kind in enumerate(kinds)]
    items[-1], items[-2] = items[-2], items[-1]  # arrival order, not the events' order, is given
    message = compose_summary("driveway", "driveway", items, 600, AT + dt.timedelta(minutes=10), "[NVR]")
    assert message.subject == ("[NVR] driveway: 7 more alerts in the last 10 min "
                               "(4 offline, 3 online); last: offline")
    for item in items:
        assert f"- {iso_utc(item.at)} (hub time {local_text(item.at)}): {item.headline}" in message.body


# -- the message SendGrid gets -------------------------------------------------------------------

def test_build_mail_puts_all_recipients_in_one_personalization() -> None:
    """The JSON has one personalization, plain text, custom args and categories."""
    mail = build_mail("nvr@example.com", Outgoing(3, "disk_low", None, "s", "b",
                                                  ("a@example.com", "b@example.com"))).get()
    assert mail["personalizations"] == [{"to": [{"email": "a@example.com"}, {"email": "b@example.com"}]}]
    assert mail["content"] == [{"type": "text/plain", "value": "b"}]
    assert mail["custom_args"] == {"alert_id": "3", "kind": "disk_low"}
    assert mail["categories"] == ["nvr-alert", "disk_low"]


# -- talking to SendGrid ------------------------------------------------------------------------

@pytest.mark.parametrize("mode, expected", [
    ("ok", Delivery("sent", 202)),
    ("error", Delivery("retry", 500)),
    ("rate_limited", Delivery("retry", 429)),
    ("bad_request", Delivery("failed", 400)),
])
def test_outcome_follows_sendgrids_answer(mode: str, expected: Delivery, stub: SendGridStub) -> None:
    """2xx is sent, 429 and 5xx are retried later, other 4xx fail for good."""
    stub.mode = mode
    delivery = mailer(stub.url).send(outgoing())
    assert (delivery.outcome, delivery.status) == (expected.outcome, expected.status)
    assert (delivery.error == "") == (mode == "ok")
    if mode != "ok":
        assert f"HTTP {expected.status}" in delivery.error and f"stub mode {mode}" in delivery.error


def test_wrong_key_fails_with_sendgrids_message(stub: SendGridStub) -> None:
    """A key SendGrid refuses is a permanent failure that quotes the answer, not the key."""
    delivery = mailer(stub.url, key="SG.wrong").send(outgoing())
    assert delivery.outcome == "failed" and delivery.status == 401
    assert "authorization grant is invalid" in delivery.error and "SG.wrong" not in delivery.error


def test_hanging_request_ends_after_send_timeout(stub: SendGridStub) -> None:
    """A request SendGrid never answers ends after send_timeout, to be retried."""
    stub.mode = "hang"
    began = time.monotonic()
    delivery = mailer(stub.url, timeout=0.3).send(outgoing())
    assert 0.25 <= time.monotonic() - began < 1.0
    assert delivery == Delivery("retry", None, "SendGrid did not answer within 0.3 s")


def test_unreachable_api_is_retried() -> None:
    """Nothing listening at the API host is a retryable error naming the host."""
    host = f"http://127.0.0.1:{free_port()}"
    delivery = mailer(host).send(outgoing())
    assert delivery.outcome == "retry" and delivery.error.startswith(f"cannot reach {host}: ")


def test_api_key_never_reaches_the_log(stub: SendGridStub, caplog: pytest.LogCaptureFixture) -> None:
    """Even at DEBUG, the HTTP client's header dump (with the key) is not logged."""
    caplog.set_level(logging.DEBUG)
    assert mailer(stub.url).send(outgoing()).outcome == "sent"
    assert "PAYLOAD" in caplog.text  # the client did log at DEBUG ...
    assert "SG.test" not in caplog.text  # ... but not the Authorization header
    assert stub.accepted[0].headers["Authorization"] == "Bearer SG.test"
