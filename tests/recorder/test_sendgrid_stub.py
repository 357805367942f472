"""The SendGrid stand-in answers like SendGrid, so the alert tests can trust it."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.procs import wait_for
from tests.support.sendgrid_stub import SendGridStub

MAIL = {"personalizations": [{"to": [{"email": "owner@example.com"}]}],
        "from": {"email": "nvr@example.com"}, "subject": "hello",
        "content": [{"type": "text/plain", "value": "body"}]}


@pytest.fixture
def stub() -> Iterator[SendGridStub]:
    """A started stub; stopped at the end."""
    with SendGridStub(api_key="SG.test") as server:
        yield server


def post(url: str, payload: Any, key: str | None = "SG.test", path: str = "/v3/mail/send",
         timeout: float = 5.0) -> tuple[int, bytes]:
    """POST JSON with urllib; return the status and body, errors included."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url + path, data=json.dumps(payload).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


@pytest.mark.parametrize("key, path, payload, status", [
    ("SG.test", "/v3/mail/send", MAIL, 202),
    (None, "/v3/mail/send", MAIL, 401),
    ("SG.other", "/v3/mail/send", MAIL, 401),
    ("SG.test", "/v3/other", MAIL, 404),
    ("SG.test", "/v3/mail/send", {**MAIL, "from": {"email": "nobody"}}, 400),
    ("SG.test", "/v3/mail/send", {**MAIL, "personalizations": []}, 400),
    ("SG.test", "/v3/mail/send", {**MAIL, "attachments": [
        {"content": "/9j/2Q==", "filename": "motion.jpg", "type": "image/jpeg"}]}, 202),
    ("SG.test", "/v3/mail/send", {**MAIL, "attachments": [
        {"content": "not base64!", "filename": "motion.jpg"}]}, 400),
    ("SG.test", "/v3/mail/send", {**MAIL, "attachments": [{"content": "/9j/2Q=="}]}, 400),
    ("SG.test", "/v3/mail/send", {**MAIL, "attachments": []}, 400),
])
def test_answers_like_sendgrid(stub: SendGridStub, key: str | None, path: str, payload: Any,
                               status: int) -> None:
    """A good request gets 202 and no body; a bad key 401; a bad mail 400."""
    got, body = post(stub.url, payload, key=key, path=path)
    assert got == status
    assert (body == b"") == (status == 202)


def test_hang_holds_until_the_mode_changes(stub: SendGridStub) -> None:
    """In 'hang' a request waits unanswered; switching to 'ok' answers it."""
    stub.mode = "hang"
    results: list[int] = []
    thread = threading.Thread(target=lambda: results.append(post(stub.url, MAIL)[0]))
    thread.start()
    try:
        wait_for(stub.in_flight, 5, "the held request")
        assert results == []
        stub.mode = "ok"
    finally:
        thread.join(5)
    assert results == [202] and stub.wait_for(lambda j: j["subject"] == "hello").status == 202


def test_client_giving_up_is_recorded_as_abandoned(stub: SendGridStub) -> None:
    """A client that times out on a held request is not counted as a delivered mail."""
    stub.mode = "hang"
    with pytest.raises(TimeoutError):
        post(stub.url, MAIL, timeout=0.2)
    wait_for(lambda: stub.requests[0].abandoned, 5, "the request marked abandoned")
    stub.mode = "ok"
    assert stub.accepted == []


def test_stop_releases_held_requests(stub: SendGridStub) -> None:
    """stop() does not wait for held requests to be answered."""
    stub.mode = "hang"
    thread = threading.Thread(target=lambda: pytest.raises(Exception, post, stub.url, MAIL))
    thread.start()
    wait_for(stub.in_flight, 5, "the held request")
    began = time.monotonic()
    stub.stop()
    thread.join(5)
    assert time.monotonic() - began < 2 and not thread.is_alive()


def test_wait_for_reports_what_arrived(stub: SendGridStub) -> None:
    """A wait that times out says which mails did arrive."""
    post(stub.url, MAIL)
    with pytest.raises(AssertionError, match="hello"):
        stub.wait_for(lambda j: j["subject"] == "other", timeout=0.2)
