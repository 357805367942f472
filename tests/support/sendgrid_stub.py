"""A real HTTP server on 127.0.0.1 standing in for SendGrid's ``POST /v3/mail/send``."""

from __future__ import annotations

import base64
import dataclasses
import json
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODES = {
    "ok": 202,  # accepted, empty body: what SendGrid answers
    "error": 500,
    "rate_limited": 429,
    "bad_request": 400,
    "hang": None,  # hold the request, answer nothing until the mode changes or stop()
}


@dataclasses.dataclass
class Received:
    """One request the stub got, and what it answered (None: not yet, or never)."""

    json: Any
    headers: dict[str, str]
    at: float  # time.monotonic() at arrival
    status: int | None = None
    abandoned: bool = False  # the client hung up while the stub held the request
    answered_at: float | None = None


def _errors(message: str, field: str | None = None) -> bytes:
    return json.dumps({"errors": [{"message": message, "field": field, "help": None}]}).encode()


def _invalid(payload: Any) -> str | None:
    """Say what SendGrid would reject in a mail/send body (None if it looks acceptable)."""
    if not isinstance(payload, dict):
        return "The request body must be a JSON object."
    personalizations = payload.get("personalizations") or []
    if not personalizations or not all(p.get("to") for p in personalizations):
        return "The personalizations field is required and must have at least one to."
    addresses = [to.get("email", "") for p in personalizations for to in p["to"]]
    addresses.append((payload.get("from") or {}).get("email", ""))
    for address in addresses:
        local, at, domain = str(address).rpartition("@")
        if not (at and local and "." in domain):
            return f"Does not contain a valid address: {address!r}"
    if not payload.get("subject") and not any(p.get("subject") for p in personalizations):
        return "The subject is required."
    if not payload.get("content"):
        return "The content field is required."
    return _invalid_attachments(payload.get("attachments"))


def _invalid_attachments(attachments: Any) -> str | None:
    """Say what SendGrid would reject in the attachments (each: base64 content and a filename)."""
    if attachments is None:
        return None
    if not isinstance(attachments, list) or not attachments:
        return "The attachments field must be a non-empty array."
    for item in attachments:
        if not isinstance(item, dict) or not item.get("filename"):
            return "The attachment filename is required."
        try:
            base64.b64decode(str(item.get("content") or ""), validate=True)
        except ValueError:
            return "The attachment content must be base64 encoded."
        if not item.get("content"):
            return "The attachment content is required."
        if item.get("disposition", "attachment") not in ("attachment", "inline"):
            return "The attachment disposition must be attachment or inline."
    return None


def attachments_of(payload: Any) -> list[tuple[str, str, bytes]]:
    """Return the (filename, type, decoded bytes) of each attachment of a mail/send body."""
    return [(item["filename"], item.get("type", ""), base64.b64decode(item["content"]))
            for item in (payload or {}).get("attachments") or []]


class SendGridStub:
    """Answers like SendGrid's mail/send API; ``mode`` picks the answer and can change any time."""

    def __init__(self, api_key: str = "SG.test") -> None:
        self.api_key = api_key
        self.requests: list[Received] = []
        self._mode = "ok"
        self._stopped = False
        self._changed = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def mode(self) -> str:
        """How the stub answers: ok | error | rate_limited | bad_request | hang."""
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(f"unknown mode {value!r}; expected one of {sorted(MODES)}")
        with self._changed:
            self._mode = value
            self._changed.notify_all()

    @property
    def url(self) -> str:
        """The base URL to give the SendGrid client as its ``host``."""
        assert self._server is not None, "start the stub first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def accepted(self) -> list[Received]:
        """The requests answered 2xx (mails SendGrid would deliver)."""
        with self._changed:
            return [r for r in self.requests if r.status is not None and 200 <= r.status < 300]

    def in_flight(self) -> list[Received]:
        """The requests held without an answer right now (mode 'hang')."""
        with self._changed:
            return [r for r in self.requests if r.status is None and not r.abandoned]

    def start(self) -> SendGridStub:
        """Listen on a free port of 127.0.0.1 and serve in a background thread."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="sendgrid-stub",
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release held requests and stop serving."""
        with self._changed:
            self._stopped = True
            self._changed.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> SendGridStub:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def wait_for(self, predicate: Callable[[Any], bool] = lambda _json: True,
                 timeout: float = 10.0) -> Received:
        """Wait for an accepted mail whose JSON satisfies ``predicate``; fail with what came."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for received in self.requests:
                    if received.status is not None and 200 <= received.status < 300 \
                            and predicate(received.json):
                        return received
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    got = [(r.status, r.abandoned, (r.json or {}).get("subject")
                            if isinstance(r.json, dict) else r.json) for r in self.requests]
                    raise AssertionError(f"no matching mail accepted within {timeout:g} s; "
                                         f"got (status, abandoned, subject): {got}")
                self._changed.wait(remaining)

    def wait_requests(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Wait until at least ``count`` requests arrived (answered or not)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"got {len(self.requests)} requests, not {count}, "
                                         f"within {timeout:g} s")
                self._changed.wait(remaining)
            return list(self.requests)

    # -- serving ------------------------------------------------------------------------

    def _record(self, received: Received) -> None:
        with self._changed:
            self.requests.append(received)
            self._changed.notify_all()

    def _answered(self, received: Received, status: int | None, abandoned: bool = False) -> None:
        with self._changed:
            received.status, received.abandoned = status, abandoned
            received.answered_at = time.monotonic()
            self._changed.notify_all()

    def _hold(self, connection: socket.socket) -> str | None:
        """Hold a request while the mode is 'hang'; return the new mode, or None if it ended."""
        with self._changed:
            while self._mode == "hang" and not self._stopped:
                self._changed.wait(0.05)
                if _peer_closed(connection):
                    return None
            # a client that gave up just now must not count as a delivered mail
            return None if self._stopped or _peer_closed(connection) else self._mode

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            """Serves POST /v3/mail/send for the stub."""

            def do_POST(self) -> None:  # noqa: N802 - the http.server naming
                """Check the key, parse the mail, answer as the stub's mode says."""
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.path != "/v3/mail/send":
                    self._answer(404, _errors(f"no such endpoint {self.path}"))
                    return
                try:
                    payload = json.loads(raw or b"null")
                except ValueError:
                    payload = None
                received = Received(payload, dict(self.headers.items()), time.monotonic())
                stub._record(received)
                if self.headers.get("Authorization") != f"Bearer {stub.api_key}":
                    self._finish(received, 401, _errors(
                        "The provided authorization grant is invalid, expired, or revoked"))
                    return
                mode = stub.mode
                if mode == "hang":
                    mode = stub._hold(self.connection)
                    if mode is None:  # the client gave up, or the stub stops: never answer
                        stub._answered(received, None, abandoned=True)
                        self.close_connection = True
                        return
                problem = _invalid(payload)
                if mode == "ok" and problem:
                    self._finish(received, 400, _errors(problem))
                    return
                status = MODES[mode] or 500
                self._finish(received, status, b"" if status == 202 else _errors(f"stub mode {mode}"))

            def _finish(self, received: Received, status: int, body: bytes) -> None:
                # recorded first, so a client holding the answer always finds it in ``requests``
                stub._answered(received, status)
                try:
                    self._answer(status, body)
                except OSError:  # the client hung up meanwhile
                    stub._answered(received, None, abandoned=True)

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                if status == 202:
                    self.send_header("X-Message-Id", uuid.uuid4().hex[:22])
                if body:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                """Keep the test output quiet; ``requests`` records everything."""

        return Handler


def _peer_closed(connection: socket.socket) -> bool:
    """Tell whether the client closed its end (readable, and reading gives end of file)."""
    try:
        readable, _, _ = select.select([connection], [], [], 0)
        if not readable:
            return False
        return connection.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True
