"""Small JSON reports to the hub (motion events, face sightings): the queue and the send loop.

Each kind of report is a POST on the ingest port (the stream's token and TLS) that the hub
answers 200 once it is durable. Reports wait in an ``EventQueue`` beside the footage spool
(one JSON file each, bounded: the oldest is dropped with a log line) until then, so what was
seen while the hub was away arrives when it is back. ``ReportSender`` is the thread that sends
them, with backoff and outage logging, and polls the hub for the answer's other half (motion
settings, the face gallery) through ``_poll``, which each kind implements.
"""

from __future__ import annotations

import abc
import json
import logging
import threading
import time
from pathlib import Path

import h11

from nvrlib.durable import write_file_durably

from .backoff import Backoff, Outage
from .errors import HubRejected, HubUnreachable
from .uplink import RESPONSE_TIMEOUT, USER_AGENT, HubAddress, connect, ingest_path

logger = logging.getLogger(__name__)

MAX_QUEUED = 500  # reports; with ~20 KB snapshots about 10 MB at most
MAX_ANSWER_BYTES = 64 * 1024
FINAL_SEND_SECONDS = 3.0  # at shutdown, what is still queued gets this long (it stays on disk)
READY_CHECK_SECONDS = 0.5  # how often a sender waiting for the first accepted stream looks at stop
# Answers that retrying will not change: the report is dropped (logged), the next goes on.
DROPPED_STATUSES = frozenset({400, 403, 404, 405, 409, 413, 415, 423})


def route_path(camera: str, route: str) -> str:
    """Return the target of a camera's report route (``events``, ``faces``, ...)."""
    return f"{ingest_path(camera)}/{route}"


def hub_request(hub: HubAddress, method: str, target: str, body: bytes | None = None,
                timeout: float = RESPONSE_TIMEOUT, *, headers: tuple[tuple[str, str], ...] = (),
                max_bytes: int = MAX_ANSWER_BYTES) -> tuple[int, bytes]:
    """Send one small request to the hub and return (status, body); raise HubUnreachable.

    The answer's body is cut at ``max_bytes`` (a face gallery is allowed more than the rest).
    """
    head = [("Host", hub.netloc), ("User-Agent", USER_AGENT), ("Connection", "close"), *headers]
    if hub.token:
        head.append(("Authorization", f"Bearer {hub.token}"))
    if body is not None:
        head += [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    conn = h11.Connection(our_role=h11.CLIENT)
    with connect(hub) as sock:
        data = conn.send(h11.Request(method=method, target=target, headers=head))
        data += conn.send(h11.Data(data=body)) if body else b""
        data += conn.send(h11.EndOfMessage())
        try:
            sock.sendall(data)
            sock.settimeout(timeout)
            return _read_answer(conn, sock, max_bytes)
        except (OSError, h11.RemoteProtocolError) as exc:
            raise HubUnreachable(f"request to {hub.netloc} failed: {exc}") from None


def _read_answer(conn: h11.Connection, sock,  # type: ignore[no-untyped-def]
                 max_bytes: int) -> tuple[int, bytes]:
    status, body = 0, bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(sock.recv(65536))
        elif isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            body += event.data[: max_bytes - len(body)]
        elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
            if not status:
                raise HubUnreachable("the hub closed the connection without an answer")
            return status, bytes(body)


class EventQueue:
    """Reports not yet accepted by the hub: one JSON file each (or memory with --no-spool).

    ``key_field`` names the report's key (``event_key``, ``sighting_key``): a final report
    (``end`` set) replaces the queued first report of its key. ``kind`` names it in logs.
    """

    def __init__(self, folder: Path | None, limit: int = MAX_QUEUED,
                 log: logging.Logger | None = None, *, key_field: str = "event_key",
                 kind: str = "motion") -> None:
        self.folder = folder
        self.limit = limit
        self.log = log or logger
        self.key_field = key_field
        self.kind = kind
        self.dropped = 0
        self._lock = threading.Lock()
        self._items: dict[str, dict] = {}  # file name -> body, oldest first
        self._seq = 0
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            self._load(folder)

    def put(self, body: dict) -> None:
        """Queue a report; a report of an event's end replaces the queued one of its start."""
        with self._lock:
            key = body.get(self.key_field)
            if body.get("end") is not None:
                for name in [n for n, b in self._items.items() if b.get(self.key_field) == key]:
                    self._remove(name)
            while len(self._items) >= self.limit:
                oldest = next(iter(self._items))
                self.dropped += 1
                self.log.warning("%s queue full (%d reports): dropped the oldest, %s %s",
                                 self.kind, self.limit, _noun(self.key_field),
                                 self._items[oldest].get(self.key_field))
                self._remove(oldest)
            self._seq += 1
            name = f"{self._seq:012d}.json"
            self._items[name] = body
            if self.folder is not None:
                write_file_durably(self.folder / name, json.dumps(body).encode())

    def peek(self) -> tuple[str, dict] | None:
        """Return the oldest report (name, body), or None."""
        with self._lock:
            return next(iter(self._items.items()), None)

    def done(self, name: str) -> None:
        """Forget a report the hub accepted (or refused for good)."""
        with self._lock:
            self._remove(name)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def _remove(self, name: str) -> None:
        if self._items.pop(name, None) is not None and self.folder is not None:
            (self.folder / name).unlink(missing_ok=True)

    def _load(self, folder: Path) -> None:
        for path in sorted(folder.glob("*.json")):
            try:
                body = json.loads(path.read_bytes())
                seq = int(path.stem)
            except (OSError, ValueError):
                self.log.warning("%s queue: dropping unreadable %s", self.kind, path.name)
                path.unlink(missing_ok=True)
                continue
            self._items[path.name] = body
            self._seq = max(self._seq, seq)
        for partial in folder.glob("*.part"):
            partial.unlink(missing_ok=True)
        if self._items:
            self.log.info("%s queue: %d report(s) from an earlier run to send", self.kind,
                          len(self._items))


def _noun(key_field: str) -> str:
    """``event_key`` -> ``event``: how a log line names a report."""
    return key_field.removesuffix("_key")


class ReportSender(threading.Thread, abc.ABC):
    """Sends queued reports to one route of the hub and polls it (``_poll``) now and then.

    A subclass sets ``route`` and implements ``_poll`` (raise HubUnreachable when the hub is
    away; set ``_next_poll``) and ``_take_answer`` (the body of a 200).
    """

    route = "events"
    what = "motion event"  # in log lines: "hub refused motion event <key>"

    def __init__(self, camera: str, hub: HubAddress, queue: EventQueue, stop: threading.Event,
                 *, poll_seconds: float, backoff: Backoff | None = None,
                 log: logging.Logger | None = None, name: str) -> None:
        super().__init__(name=f"{name}-{camera}", daemon=True)
        self.camera = camera
        self.hub = hub
        self.queue = queue
        self.stop = stop
        self.poll_seconds = poll_seconds
        self.log = log or logger.getChild(camera)
        self.sent = 0
        self._backoff = backoff or Backoff(maximum=poll_seconds)
        self._outage = Outage(self.log, f"hub ({self.what}s)")
        self._wake = threading.Event()
        self._finished = threading.Event()
        self._next_poll = 0.0
        # set once the hub accepted the camera's stream: before that a hub that has never seen
        # the camera answers 404 "unknown camera", which read as an outage at every first start
        self.ready: threading.Event | None = None

    def put(self, body: dict) -> None:
        """Queue a report body and send it soon (called from the detecting thread)."""
        self.queue.put(body)
        self._wake.set()

    def poll_soon(self) -> None:
        """Poll at the next round rather than when due."""
        self._next_poll = 0.0
        self._wake.set()

    def finish(self) -> None:
        """Send what is queued for a last few seconds, then end (the rest stays queued)."""
        self._finished.set()
        self._wake.set()

    def run(self) -> None:
        """Send reports as they come; poll; retry with backoff while the hub is away."""
        while self.ready is not None and not (self.ready.is_set() or self._finished.is_set()
                                              or self.stop.is_set()):
            self.ready.wait(READY_CHECK_SECONDS)  # reports queue meanwhile (put)
        while not (self._finished.is_set() or self.stop.is_set()):
            delay = self._round()
            self._wake.wait(delay)
            self._wake.clear()
        deadline = time.monotonic() + FINAL_SEND_SECONDS
        while len(self.queue) and not self._outage.active and time.monotonic() < deadline:
            if not self._send_one():
                break

    def _round(self) -> float:
        """Send everything queued, poll if due; return how long to wait before the next round."""
        try:
            while self.queue.peek() is not None and not self._finished.is_set():
                if not self._send_one():
                    return self._backoff.next_delay()
            if time.monotonic() >= self._next_poll:
                self._poll()
        except HubUnreachable as exc:
            self._outage.failed(str(exc))
            return self._backoff.next_delay()
        except Exception:  # never let the thread die: reports are a bonus, recording goes on
            self.log.exception("%s uplink failed; retrying", self.what)
            return self.poll_seconds
        self._backoff.reset()
        return max(0.05, self._next_poll - time.monotonic())

    def _send_one(self) -> bool:
        """Send the oldest report; False if it must wait (hub away or refusing for now)."""
        item = self.queue.peek()
        if item is None:
            return True
        name, body = item
        try:
            status, answer = hub_request(self.hub, "POST", route_path(self.camera, self.route),
                                         json.dumps(body).encode())
        except HubUnreachable as exc:
            self._outage.failed(str(exc))
            return False
        if status == 200 or (status in DROPPED_STATUSES
                             and not camera_not_yet_known(status, answer)):
            self._outage.recovered()  # (a 401 or 503 goes on the outage: said once, not per try)
        if status == 200:
            self.queue.done(name)
            self.sent += 1
            self._take_answer(answer)
            return True
        if status in DROPPED_STATUSES and not camera_not_yet_known(status, answer):
            self.log.warning("hub refused %s %s (%d): %s; dropped", self.what,
                             body.get(self.queue.key_field), status, first_line(answer))
            self.queue.done(name)
            return True
        self._outage.failed(str(HubRejected(status, "", first_line(answer))))
        return False

    @abc.abstractmethod
    def _poll(self) -> None:
        """Ask the hub for this channel's settings (motion) or gallery (faces); set _next_poll."""

    @abc.abstractmethod
    def _take_answer(self, answer: bytes) -> None:
        """Use what a 200 answer to a report says (a changed gallery, for faces)."""


def camera_not_yet_known(status: int, answer: bytes) -> bool:
    """The hub has no row for the camera yet (its first stream is still being admitted)."""
    return status == 404 and b"unknown camera" in answer


def first_line(body: bytes) -> str:
    """The first line of an answer's body, at most 200 characters (for a log line)."""
    text = body.decode("utf-8", "replace").strip()
    return text.splitlines()[0][:200] if text else ""
