"""Motion events to the hub, and the hub's motion settings back (protocol.md, "Motion events").

Each event is reported at its start and again at its end, as one small JSON POST on the ingest
port (the stream's token and TLS). Reports wait in an ``EventQueue`` beside the footage spool
(``<spool>/.motion/<camera>/``, bounded: the oldest is dropped with a log line) until the hub
answers 200, so events seen while the hub is away arrive when it is back. The answer carries the
camera's motion settings; a poll of ``GET .../motion-settings`` every POLL_SECONDS brings an
admin's change in the web app to a running edge without a restart.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import h11

from nvrlib.durable import write_file_durably

from .backoff import Backoff, Outage
from .errors import HubRejected, HubUnreachable
from .motion import BadSettings, MotionEvent, MotionSettings, settings_from_json
from .uplink import RESPONSE_TIMEOUT, USER_AGENT, HubAddress, connect, ingest_path

logger = logging.getLogger(__name__)

POLL_SECONDS = 5.0
UNSUPPORTED_POLL_SECONDS = 60.0  # a hub without the motion routes (404 on the settings)
MAX_QUEUED = 500  # reports; with ~20 KB snapshots about 10 MB at most
MAX_ANSWER_BYTES = 64 * 1024
FINAL_SEND_SECONDS = 3.0  # at shutdown, what is still queued gets this long (it stays on disk)
# Answers that retrying will not change: the report is dropped (logged), the next goes on.
DROPPED_STATUSES = frozenset({400, 403, 404, 405, 409, 413, 415, 423})


def motion_path(camera: str, route: str) -> str:
    """Return the target of a motion route of a camera (``events`` or ``motion-settings``)."""
    return f"{ingest_path(camera)}/{route}"


def hub_request(hub: HubAddress, method: str, target: str, body: bytes | None = None,
                timeout: float = RESPONSE_TIMEOUT) -> tuple[int, bytes]:
    """Send one small request to the hub and return (status, body); raise HubUnreachable."""
    headers = [("Host", hub.netloc), ("User-Agent", USER_AGENT), ("Connection", "close")]
    if hub.token:
        headers.append(("Authorization", f"Bearer {hub.token}"))
    if body is not None:
        headers += [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    conn = h11.Connection(our_role=h11.CLIENT)
    with connect(hub) as sock:
        data = conn.send(h11.Request(method=method, target=target, headers=headers))
        data += conn.send(h11.Data(data=body)) if body else b""
        data += conn.send(h11.EndOfMessage())
        try:
            sock.sendall(data)
            sock.settimeout(timeout)
            return _read_answer(conn, sock)
        except (OSError, h11.RemoteProtocolError) as exc:
            raise HubUnreachable(f"motion request to {hub.netloc} failed: {exc}") from None


def _read_answer(conn: h11.Connection, sock) -> tuple[int, bytes]:  # type: ignore[no-untyped-def]
    status, body = 0, bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(sock.recv(65536))
        elif isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            body += event.data[: MAX_ANSWER_BYTES - len(body)]
        elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
            if not status:
                raise HubUnreachable("the hub closed the connection without an answer")
            return status, bytes(body)


def report_body(camera: str, event: MotionEvent) -> dict[str, object]:
    """The JSON body of one report, the snapshot in base64."""
    body = event.to_json(camera)
    if event.snapshot is not None:
        body["snapshot"] = base64.b64encode(event.snapshot).decode("ascii")
    return body


class EventQueue:
    """Reports not yet accepted by the hub: one JSON file each (or memory with --no-spool)."""

    def __init__(self, folder: Path | None, limit: int = MAX_QUEUED,
                 log: logging.Logger | None = None) -> None:
        self.folder = folder
        self.limit = limit
        self.log = log or logger
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
            if body.get("end") is not None:
                for name in [n for n, b in self._items.items()
                             if b.get("event_key") == body.get("event_key")]:
                    self._remove(name)
            while len(self._items) >= self.limit:
                oldest = next(iter(self._items))
                self.dropped += 1
                self.log.warning("motion queue full (%d reports): dropped the oldest, event %s",
                                 self.limit, self._items[oldest].get("event_key"))
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
                self.log.warning("motion queue: dropping unreadable %s", path.name)
                path.unlink(missing_ok=True)
                continue
            self._items[path.name] = body
            self._seq = max(self._seq, seq)
        for partial in folder.glob("*.part"):
            partial.unlink(missing_ok=True)
        if self._items:
            self.log.info("motion queue: %d report(s) from an earlier run to send", len(self._items))


@dataclasses.dataclass
class SettingsChoice:
    """The flags' settings until an admin sets the camera's in the web app (updated_at)."""

    local: MotionSettings
    apply: Callable[[MotionSettings], None]
    current: MotionSettings | None = None

    def take(self, hub: MotionSettings) -> None:
        """Apply the hub's settings if an admin set them, else the flags' (once each change)."""
        chosen = hub if hub.updated_at is not None else self.local
        if chosen != self.current:
            self.current = chosen
            self.apply(chosen)


class MotionReporter(threading.Thread):
    """Sends queued reports to the hub and polls the camera's motion settings."""

    def __init__(self, camera: str, hub: HubAddress, queue: EventQueue, stop: threading.Event,
                 settings: SettingsChoice, *, poll_seconds: float = POLL_SECONDS,
                 backoff: Backoff | None = None, log: logging.Logger | None = None) -> None:
        super().__init__(name=f"motion-uplink-{camera}", daemon=True)
        self.camera = camera
        self.hub = hub
        self.queue = queue
        self.stop = stop
        self.settings = settings
        self.poll_seconds = poll_seconds
        self.log = log or logger.getChild(camera)
        self.sent = 0
        self._backoff = backoff or Backoff(maximum=poll_seconds)
        self._outage = Outage(self.log, "hub (motion events)")
        self._wake = threading.Event()
        self._finished = threading.Event()
        self._next_poll = 0.0

    def report(self, event: MotionEvent) -> None:
        """Queue a report of ``event`` (called from the motion thread) and send it soon."""
        self.queue.put(report_body(self.camera, event))
        self._wake.set()

    def finish(self) -> None:
        """Send what is queued for a last few seconds, then end (the rest stays queued)."""
        self._finished.set()
        self._wake.set()

    def run(self) -> None:
        """Send reports as they come; poll the settings; retry with backoff while the hub is away."""
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
        except Exception:  # never let the thread die: motion is a bonus, recording goes on
            self.log.exception("motion uplink failed; retrying")
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
            status, answer = hub_request(self.hub, "POST", motion_path(self.camera, "events"),
                                         json.dumps(body).encode())
        except HubUnreachable as exc:
            self._outage.failed(str(exc))
            return False
        self._outage.recovered()
        if status == 200:
            self.queue.done(name)
            self.sent += 1
            self._take_settings(answer)
            return True
        if status in DROPPED_STATUSES and not _camera_not_yet_known(status, answer):
            self.log.warning("hub refused motion event %s (%d): %s; dropped",
                             body.get("event_key"), status, _first_line(answer))
            self.queue.done(name)
            return True
        self._outage.failed(str(HubRejected(status, "", _first_line(answer))))
        return False

    def _poll(self) -> None:
        status, answer = hub_request(self.hub, "GET", motion_path(self.camera, "motion-settings"))
        self._outage.recovered()
        if status == 200:
            self._take_settings(answer)
            self._next_poll = time.monotonic() + self.poll_seconds
            return
        # the camera is not in the catalog yet (its stream is being admitted): ask again soon;
        # any other refusal (a hub without motion events says 404 too) less often
        not_yet = _camera_not_yet_known(status, answer)
        self.log.log(logging.DEBUG if status == 404 else logging.WARNING,
                     "hub has no motion settings for %s (%d): %s", self.camera, status,
                     _first_line(answer))
        wait = self.poll_seconds if not_yet else UNSUPPORTED_POLL_SECONDS
        self._next_poll = time.monotonic() + wait

    def _take_settings(self, answer: bytes) -> None:
        try:
            data = json.loads(answer)
            hub = settings_from_json(data.get("motion") if isinstance(data, dict) else None)
        except (ValueError, BadSettings) as exc:
            self.log.warning("hub sent motion settings the edge cannot use: %s", exc)
            return
        self.settings.take(hub)


def _camera_not_yet_known(status: int, answer: bytes) -> bool:
    """The hub has no row for the camera yet (its first stream is still being admitted)."""
    return status == 404 and b"unknown camera" in answer


def _first_line(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    return text.splitlines()[0][:200] if text else ""
