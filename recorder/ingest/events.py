"""Motion events on the ingest port: ``POST /ingest/v1/<camera>/events`` and
``GET /ingest/v1/<camera>/motion-settings`` (docs/design/protocol.md, "Motion events"), and the
table of every short JSON route beside the stream (``ingest_route``: these two and the face
routes of recorder/ingest/faces.py).

An edge reports each motion event at its start and again at its end (end time, peak score,
box, a base64 JPEG snapshot); the hub answers 200 once the row and the snapshot are durable,
with the camera's motion settings in the same answer. Everything here is parsing and limits:
no request body larger than MAX_BODY_BYTES is read, and bad input gets a 4xx naming the field.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import json
import math
import re
import time
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import h11

from nvrlib.catalog.models import MAX_EVENT_SECONDS
from nvrlib.names import InvalidName, validate_camera_name

from recorder.errors import IngestRejected
from recorder.ingest.guard import deadline

MAX_BODY_BYTES = 256 * 1024
MAX_SNAPSHOT_BYTES = 180 * 1024  # decoded; base64 makes it 240 KB of the body at most
EVENTS, SETTINGS = "events", "motion-settings"
FACES, GALLERY = "faces", "faces-gallery"  # served by recorder/ingest/faces.py
# every JSON route beside the stream, /ingest/v1/<camera>/<route>, and its method
ROUTE_METHODS: dict[str, bytes] = {EVENTS: b"POST", SETTINGS: b"GET", FACES: b"POST",
                                   GALLERY: b"GET"}
EVENT_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
EARLIEST = 946684800.0  # 2000-01-01
FUTURE_SLACK = 86400.0  # an edge's clock may run a little ahead; a day ahead is wrong
BOX_SLACK = 1e-3  # rounding of a box's 0..1 numbers
JPEG_MAGIC = b"\xff\xd8\xff"


@dataclasses.dataclass(frozen=True)
class Reply:
    """A JSON route's answer: status, body and extra headers.

    ``body``: a JSON object, JSON text already encoded (a large answer encoded off the event
    loop), or None for no body at all (a 304).
    """

    status: int
    body: dict[str, Any] | str | None
    headers: tuple[tuple[str, str], ...] = ()

    def text(self) -> str | None:
        """The body as JSON text (None: no body)."""
        if self.body is None or isinstance(self.body, str):
            return self.body
        return json.dumps(self.body) + "\n"


@dataclasses.dataclass(frozen=True)
class MotionReport:
    """One validated report of a motion event (at its start: ``end`` None, no snapshot)."""

    camera: str
    event_key: str
    start: dt.datetime
    end: dt.datetime | None
    score: float
    box: tuple[float, float, float, float]  # x, y, w, h in 0..1 of the frame
    snapshot: bytes | None = dataclasses.field(default=None, repr=False)


class MotionHandler(Protocol):
    """What the motion routes ask of the hub (recorder.hub.Hub)."""

    def check_motion_access(self, camera: str, token: str | None) -> None:
        """Raise IngestRejected unless the token may speak for ``camera`` (the stream's rules)."""

    async def record_motion(self, report: MotionReport) -> dict[str, Any]:
        """Store the event durably; return the camera's motion settings."""

    async def motion_settings(self, camera: str) -> dict[str, Any]:
        """Return the camera's motion settings (raise IngestRejected 404/409 if not ours)."""


def ingest_route(target: bytes) -> tuple[str, str] | None:
    """Return (camera, route) if ``target`` is a route of ROUTE_METHODS, else None (a stream)."""
    path = urlsplit(target.decode("ascii", "replace")).path
    parts = [unquote(p) for p in path.split("/") if p]
    if len(parts) != 4 or parts[:2] != ["ingest", "v1"] or parts[3] not in ROUTE_METHODS:
        return None
    try:
        return validate_camera_name(parts[2]), parts[3]
    except InvalidName as exc:
        raise IngestRejected(400, f"bad camera name: {exc}") from None


def check_method(route: str, method: bytes) -> None:
    """Refuse a method the route does not take (405)."""
    wanted = ROUTE_METHODS[route]
    if method != wanted:
        raise IngestRejected(405, f"method {method.decode('ascii', 'replace')} is not allowed; "
                                  f"{wanted.decode()} /ingest/v1/<camera>/{route}")


def check_body_head(headers: dict[bytes, bytes], limit: int = MAX_BODY_BYTES) -> None:
    """Refuse, before reading it, a body that is not JSON (415) or is over ``limit`` bytes (413)."""
    kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    if kind != b"application/json":
        raise IngestRejected(415, "the body must be application/json")
    length = headers.get(b"content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise IngestRejected(413, f"the body is larger than {limit} bytes")


def parse_report(camera: str, body: bytes, now: float | None = None) -> MotionReport:
    """Validate an event's JSON body, or raise IngestRejected(400) naming the bad field."""
    data = json_object(body)
    key = key_field(data, "event_key")
    now = time.time() if now is None else now
    start, end = time_span(data, now, MAX_EVENT_SECONDS)
    return MotionReport(camera, key, start, end, _score(data.get("score", 0.0)),
                        box_field(data.get("box", [0, 0, 0, 0])),
                        jpeg_field(data.get("snapshot"), "snapshot", MAX_SNAPSHOT_BYTES))


def json_object(body: bytes) -> dict[str, Any]:
    """Parse a request body that must be a JSON object (400 otherwise)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise IngestRejected(400, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise IngestRejected(400, "the body must be a JSON object")
    return data


def key_field(data: dict[str, Any], name: str) -> str:
    """An idempotency key (``event_key``, ``sighting_key``): 1-64 of A-Za-z0-9._-, else 400."""
    key = data.get(name)
    if not isinstance(key, str) or not EVENT_KEY_RE.fullmatch(key):
        raise IngestRejected(400, f"{name} must be 1-64 letters, digits, '.', '_' or '-'")
    return key


def time_span(data: dict[str, Any], now: float, longest: float,
              ) -> tuple[dt.datetime, dt.datetime | None]:
    """The ``start`` and optional ``end`` of a report, ``end`` within ``longest`` s of ``start``."""
    start = time_field(data.get("start"), "start", now)
    end = None if data.get("end") is None else time_field(data.get("end"), "end", now)
    if end is not None and not 0 <= end - start <= longest:
        span = f"{longest / 3600:g} h" if longest >= 3600 else f"{longest:g} s"
        raise IngestRejected(400, f"end must be at or after start, within {span}")
    return utc(start), None if end is None else utc(end)


def number_field(value: object, name: str) -> float:
    """A finite JSON number (400 naming the field otherwise)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise IngestRejected(400, f"{name} must be a number")
    return float(value)


def time_field(value: object, name: str, now: float) -> float:
    """Unix seconds from 2000-01-01 up to a day ahead of ``now`` (400 otherwise)."""
    seconds = number_field(value, name)
    if not EARLIEST <= seconds <= now + FUTURE_SLACK:
        raise IngestRejected(400, f"{name} is not a plausible time (Unix seconds)")
    return seconds


def utc(seconds: float) -> dt.datetime:
    """Unix seconds as an aware UTC time."""
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc)


def _score(value: object) -> float:
    score = number_field(value, "score")
    if not 0 <= score <= 1:
        raise IngestRejected(400, "score must be within 0..1")
    return score


def box_field(value: object) -> tuple[float, float, float, float]:
    """A box [x, y, w, h] in 0..1 of the frame (400 otherwise); rounding past the edge is cut."""
    if not isinstance(value, list) or len(value) != 4:
        raise IngestRejected(400, "box must be [x, y, w, h]")
    x, y, w, h = (number_field(v, "box") for v in value)
    if min(x, y, w, h) < 0 or x + w > 1 + BOX_SLACK or y + h > 1 + BOX_SLACK:
        raise IngestRejected(400, "box must lie within the frame: x, y, w, h in 0..1, "
                                  "x + w and y + h at most 1")
    return x, y, min(w, 1 - x), min(h, 1 - y)


def jpeg_field(value: object, name: str, limit: int) -> bytes | None:
    """A base64 JPEG of at most ``limit`` bytes decoded, or None (400/413 otherwise)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise IngestRejected(400, f"{name} must be base64 text")
    if len(value) > 4 * (limit // 3 + 1):  # refuse before decoding what cannot fit
        raise IngestRejected(413, f"{name} is larger than {limit} bytes")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise IngestRejected(400, f"{name} is not valid base64") from None
    if len(data) > limit:
        raise IngestRejected(413, f"{name} is larger than {limit} bytes")
    if not data.startswith(JPEG_MAGIC):
        raise IngestRejected(400, f"{name} must be a JPEG")
    return data


def settings_json(enabled: bool, sensitivity: int, mask: str, updated_at: dt.datetime | None,
                  ) -> dict[str, Any]:
    """The settings object both routes answer with (the mask as parsed JSON, [] if broken)."""
    try:
        polygons = json.loads(mask or "[]")
    except ValueError:
        polygons = []
    return {"enabled": enabled, "sensitivity": sensitivity,
            "mask": polygons if isinstance(polygons, list) else [],
            "updated_at": updated_at.isoformat() if updated_at else None}


class Exchange(Protocol):
    """The parts of an ingest connection the motion routes use (recorder.ingest.server)."""

    http: h11.Connection

    async def _next_event(self, timeout: float) -> h11.Event | type[h11.PAUSED]:
        """The next h11 event, reading within ``timeout``."""

    async def _send(self, event: h11.Event) -> None:
        """Send one h11 event."""


async def read_body(connection: Exchange, timeout: float, limit: int = MAX_BODY_BYTES) -> bytes:
    """Read a request body of at most ``limit`` bytes (413 beyond, chunked or not)."""
    if connection.http.they_are_waiting_for_100_continue:
        await connection._send(h11.InformationalResponse(status_code=100, headers=[]))
    body = bytearray()
    while True:
        event = await connection._next_event(timeout)
        if isinstance(event, h11.EndOfMessage):
            return bytes(body)
        if isinstance(event, h11.Data):
            body += event.data
            if len(body) > limit:
                raise IngestRejected(413, f"the body is larger than {limit} bytes")


async def read_json_body(connection: Exchange, request: h11.Request, timeout: float,
                         limit: int, what: str) -> bytes:
    """Check the head, then read a JSON body of at most ``limit`` bytes within ``timeout``."""
    check_body_head({name.lower(): value for name, value in request.headers}, limit)
    async with deadline(timeout, what):  # trickling does not extend it
        return await read_body(connection, timeout, limit)


async def serve(handler: MotionHandler, connection: Exchange, request: h11.Request,
                camera: str, route: str, token: str | None, timeout: float) -> Reply:
    """Answer one motion request (EVENTS or SETTINGS). Raises IngestRejected."""
    check_method(route, request.method)
    handler.check_motion_access(camera, token)
    if route == SETTINGS:
        return Reply(200, {"camera": camera, "motion": await handler.motion_settings(camera)})
    body = await read_json_body(connection, request, timeout, MAX_BODY_BYTES,
                                "the motion event's body")
    report = parse_report(camera, body)
    settings = await handler.record_motion(report)
    return Reply(200, {"camera": camera, "event_key": report.event_key, "motion": settings})
