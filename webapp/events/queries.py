"""Read-only queries over the alerts, outages, motion events and face sightings of the catalog,
for the events page and API.

Alerts, outages, motion events and face sightings live in four tables; a page of events is one ``UNION ALL`` of
their (time, source, id) keys, sorted newest first and cut with LIMIT/OFFSET in the database,
then the page's rows are read by id. An alert's time is when it was raised; an outage's, a
motion event's and a sighting's is when it started, and a time range matches one that
overlaps it (an open one runs to "now").
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sqlalchemy import Select, String, literal_column, or_, select, union_all

from nvrlib.catalog.models import (
    MAX_EVENT_SECONDS, MAX_SIGHTING_SECONDS, Alert, Camera, FaceSighting, MotionEvent, Outage,
    Person,
)
from nvrlib.redact import redact, redact_value

from ..catalog_queries import MAX_PAGE_SIZE, outage_reason_text
from ..extensions import db
from ..recordings.params import ParamError, choice, optional_time, parse_tz
from ..security import now as app_now

logger = logging.getLogger(__name__)

# Alert.kind: what each means, in words for people (the filter's labels and the badges).
ALERT_KINDS: dict[str, str] = {
    "new_camera": "new camera",
    "offline": "camera offline",
    "online": "camera back online",
    "failing": "stream failing",
    "stalled": "stream stalled",
    "disk_low": "disk space low",
    "disk_emergency": "disk nearly full",
    "locks_yielded": "locks yielded to a full disk",
    "admin_locks_yielded": "admin locks yielded to a full disk",
    "retention_short": "retention cut short",
    "summary": "summary",
    "test": "test email",
    "motion": "motion alert",
    "face": "face alert",
}
# Alert.status: the delivery states, with what each means (the badges' titles).
DELIVERY_STATUSES: dict[str, str] = {
    "pending": "waiting to be emailed (the hub retries with backoff)",
    "sent": "emailed",
    "failed": "the hub gave up emailing it",
    "logged": "email is off: stored and logged only",
    "muted": "the camera's alerts were muted: stored, not emailed",
    "suppressed": "debounced: counted in a summary instead",
}
# The Bootstrap badge of each delivery status on the pages.
STATUS_BADGES: dict[str, str] = {
    "sent": "text-bg-success", "pending": "text-bg-primary", "failed": "text-bg-danger",
    "logged": "text-bg-secondary", "muted": "text-bg-dark", "suppressed": "text-bg-light border",
}
OUTAGE = "outage"
MOTION = "motion"  # motion events (the alerts of kind "motion" are under ALERT)
FACE = "face"  # face sightings (the alerts of kind "face" are under ALERT)
ALERT = "alert"  # every alert, whatever its kind
ALL = "all"
UNKNOWN_PERSON = "unknown"  # person=unknown: the faces no one knows
# type=motion means motion events and type=face sightings, so the alert kinds of the same
# names are not types of their own
EVENT_TYPES: tuple[str, ...] = (ALL, *(kind for kind in ALERT_KINDS if kind not in (MOTION, FACE)),
                                OUTAGE, MOTION, FACE, ALERT)
# the alert kinds the type filter offers one by one
FILTER_KINDS = {kind: text for kind, text in ALERT_KINDS.items() if kind not in (MOTION, FACE)}
SOURCE_ALERT = "alert"
SOURCE_OUTAGE = "outage"
SOURCE_MOTION = "motion"
SOURCE_FACE = "face"
FILTER_PARAMS = ("camera", "type", "start", "end", "tz", "person")


def kind_text(kind: str) -> str:
    """Return an alert kind in words (an unknown kind is shown as it is)."""
    return ALERT_KINDS.get(kind, kind.replace("_", " "))


@dataclass(frozen=True)
class EventFilters:
    """What the events list keeps; None means "any". Times are aware UTC."""

    camera: str | None = None
    type: str = ALL  # one of EVENT_TYPES
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    person: str | None = None  # a person's name as asked, or "unknown"; None: anyone
    person_id: int | None = None  # that person's id (None with "unknown")


@dataclass(frozen=True)
class AlertEvent:
    """One alert, as the events page and API show it."""

    id: int
    at: dt.datetime  # when the hub (or the web app) raised it
    kind: str
    camera: str | None
    subject: str
    body: str
    status: str
    attempts: int
    last_error: str
    sent_at: dt.datetime | None
    next_attempt_at: dt.datetime | None
    recipients: str
    requested_by: str
    details: dict[str, Any] = field(default_factory=dict)
    source: str = SOURCE_ALERT

    @property
    def kind_text(self) -> str:
        """Return the kind in words."""
        return kind_text(self.kind)

    @property
    def status_title(self) -> str:
        """Return what the delivery status means."""
        return DELIVERY_STATUSES.get(self.status, self.status)


@dataclass(frozen=True)
class SpanEvent:
    """An event of a camera that lasts from ``start`` to ``end`` (None while it goes on)."""

    id: int
    camera: str
    start: dt.datetime
    end: dt.datetime | None
    # no such event lasts longer: one still without an end after this never ends (its edge
    # died before reporting it); None: an open one may go on for ever (an outage)
    longest: ClassVar[dt.timedelta | None] = None

    @property
    def at(self) -> dt.datetime:
        """Return when it started (its place in the list)."""
        return self.start

    @property
    def ongoing(self) -> bool:
        """Tell whether it is still going on."""
        return self.end is None and not self.end_lost

    @property
    def end_lost(self) -> bool:
        """Tell whether its end was never reported and never will be (its edge died)."""
        return (self.end is None and self.longest is not None
                and app_now() - self.start > self.longest)

    def seconds(self, now: dt.datetime) -> float | None:
        """Return how long it lasted, or has lasted until ``now`` if it is still going on
        (None: unknown, its end was lost)."""
        if self.end_lost:
            return None
        return max(0.0, ((self.end or now) - self.start).total_seconds())


@dataclass(frozen=True)
class OutageEvent(SpanEvent):
    """One outage of a camera (``end`` None while it is still going on)."""

    reason: str
    detail: str
    source: str = SOURCE_OUTAGE
    backfilled_seconds: float = 0.0  # recovered later from the edge's spool
    dropped_seconds: float = 0.0  # dropped by the edge's full spool: lost

    @property
    def reason_text(self) -> str:
        """Return the reason in words."""
        return outage_reason_text(self.reason)


@dataclass(frozen=True)
class MotionItem(SpanEvent):
    """One motion event of a camera (``end`` None while it goes on); box in 0..1 of the frame."""

    score: float
    box: tuple[float, float, float, float]  # x, y, width, height
    has_snapshot: bool
    origin: str  # edge | hub: which detector saw it
    source: str = SOURCE_MOTION
    longest: ClassVar[dt.timedelta | None] = dt.timedelta(seconds=MAX_EVENT_SECONDS)


@dataclass(frozen=True)
class FaceItem(SpanEvent):
    """One face sighting of a camera: who (None: unknown), how near, where; box in 0..1."""

    person: str | None
    person_id: int | None
    distance: float | None
    box: tuple[float, float, float, float]  # x, y, width, height
    size: int  # the face's smaller side, pixels
    has_crop: bool
    source: str = SOURCE_FACE
    longest: ClassVar[dt.timedelta | None] = dt.timedelta(seconds=MAX_SIGHTING_SECONDS)


Event = AlertEvent | OutageEvent | MotionItem | FaceItem


@dataclass(frozen=True)
class EventPage:
    """One page of events, newest first; ``has_next`` tells whether another page follows."""

    events: list[Event]
    has_next: bool
    limit: int
    offset: int


def parse_filters(args: Mapping[str, str]) -> EventFilters:
    """Validate the filter parameters shared by the page and the API (not paging)."""
    tz = parse_tz(args.get("tz"))
    start = optional_time(args, "start", tz)
    end = optional_time(args, "end", tz)
    if start is not None and end is not None and end <= start:
        raise ParamError("end", "must be after start")
    camera = args.get("camera", "").strip() or None
    if camera is not None and len(camera) > 64:
        raise ParamError("camera", "longer than a camera name can be (64 characters)")
    kind = choice(args, "type", EVENT_TYPES, ALL)
    person, person_id = _person_filter(args.get("person", ""), kind)
    return EventFilters(camera, kind, start, end, person, person_id)


def _person_filter(value: str, kind: str) -> tuple[str | None, int | None]:
    """Check ``person``: a person's name or "unknown", with type face or all."""
    name = value.strip()
    if not name:
        return None, None
    if kind not in (FACE, ALL):
        raise ParamError("person", "goes with type=face (or all), not with type=" + kind)
    if name.casefold() == UNKNOWN_PERSON:
        return UNKNOWN_PERSON, None
    if len(name) > 64:
        raise ParamError("person", "longer than a name can be (64 characters)")
    person_id = db.session.scalar(select(Person.id).where(Person.name_key == name.casefold()))
    if person_id is None:
        raise ParamError("person", f"there is no person called {name!r}")
    return name, person_id


def person_choices() -> list[str]:
    """Return the names of the people, sorted (the person filter's choices)."""
    return list(db.session.scalars(select(Person.name).order_by(Person.name_key)))


def camera_choices() -> list[str]:
    """Return the cameras of the catalog and any other camera an alert names, sorted."""
    names = set(db.session.scalars(select(Camera.name)))
    names.update(db.session.scalars(select(Alert.camera).where(Alert.camera.is_not(None))
                                    .distinct()))
    return sorted(names)


def _alert_keys(filters: EventFilters) -> Select:
    query = select(Alert.created_at.label("at"),
                   literal_column("'alert'", String).label("source"), Alert.id.label("id"))
    if filters.type not in (ALL, ALERT):
        query = query.where(Alert.kind == filters.type)
    if filters.camera is not None:
        query = query.where(Alert.camera == filters.camera)
    if filters.start is not None:
        query = query.where(Alert.created_at >= filters.start)
    if filters.end is not None:
        query = query.where(Alert.created_at < filters.end)
    return query


def _outage_keys(filters: EventFilters, camera_id: int | None) -> Select:
    query = select(Outage.started_at.label("at"),
                   literal_column("'outage'", String).label("source"), Outage.id.label("id"))
    if filters.camera is not None:
        query = query.where(Outage.camera_id == camera_id)
    if filters.end is not None:
        query = query.where(Outage.started_at < filters.end)
    if filters.start is not None:
        query = query.where(or_(Outage.ended_at.is_(None), Outage.ended_at > filters.start))
    return query


def _motion_keys(filters: EventFilters, camera_id: int | None) -> Select:
    # (camera_id, start_time) and (start_time) are indexed: the range is read off an index
    query = select(MotionEvent.start_time.label("at"),
                   literal_column("'motion'", String).label("source"),
                   MotionEvent.id.label("id"))
    if filters.camera is not None:
        query = query.where(MotionEvent.camera_id == camera_id)
    if filters.end is not None:
        query = query.where(MotionEvent.start_time < filters.end)
    if filters.start is not None:
        query = query.where(or_(MotionEvent.end_time.is_(None),
                                MotionEvent.end_time > filters.start))
    return query


def _face_keys(filters: EventFilters, camera_id: int | None) -> Select:
    # the indexes (camera_id, start_time), (person_id, [camera_id,] start_time) serve each
    # filter; an erased sighting (its person deleted) is never shown
    query = select(FaceSighting.start_time.label("at"),
                   literal_column("'face'", String).label("source"),
                   FaceSighting.id.label("id")).where(FaceSighting.erased_at.is_(None))
    if filters.person == UNKNOWN_PERSON:
        query = query.where(FaceSighting.person_id.is_(None))
    elif filters.person is not None:
        query = query.where(FaceSighting.person_id == filters.person_id)
    if filters.camera is not None:
        query = query.where(FaceSighting.camera_id == camera_id)
    if filters.end is not None:
        query = query.where(FaceSighting.start_time < filters.end)
    if filters.start is not None:
        query = query.where(or_(FaceSighting.end_time.is_(None),
                                FaceSighting.end_time > filters.start))
    return query


def _keys(filters: EventFilters) -> Select | None:
    """Return the query of the matching events' keys, or None when nothing can match."""
    parts = []
    faces_only = filters.person is not None  # type=all with a person: sightings only
    if filters.type not in (OUTAGE, MOTION, FACE) and not faces_only:
        parts.append(_alert_keys(filters))
    camera_id = None
    if filters.camera is not None:
        camera_id = db.session.scalar(select(Camera.id).where(Camera.name == filters.camera))
    if filters.camera is None or camera_id is not None:
        if filters.type in (ALL, OUTAGE) and not faces_only:
            parts.append(_outage_keys(filters, camera_id))
        if filters.type in (ALL, MOTION) and not faces_only:
            parts.append(_motion_keys(filters, camera_id))
        if filters.type in (ALL, FACE):
            parts.append(_face_keys(filters, camera_id))
    if not parts:
        return None
    keys = (union_all(*parts) if len(parts) > 1 else parts[0]).subquery()
    # Newest first; the source and id break ties so that pages never overlap.
    return select(keys.c.source, keys.c.id).order_by(keys.c.at.desc(), keys.c.source,
                                                     keys.c.id.desc())


def _details(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def alert_event(row: Alert) -> AlertEvent:
    """Return the event of an alert row, camera credentials masked (the hub masks new rows;
    this covers rows an older hub stored)."""
    return AlertEvent(row.id, row.created_at, row.kind, row.camera, redact(row.subject),
                      redact(row.body), row.status, row.attempts, redact(row.last_error or ""),
                      row.sent_at, row.next_attempt_at, row.recipients or "",
                      row.requested_by or "", redact_value(_details(row.details)))


def motion_item(row: MotionEvent, camera: str) -> MotionItem:
    """Return the event of a motion_events row."""
    return MotionItem(row.id, camera, row.start_time, row.end_time, row.score,
                      (row.box_x, row.box_y, row.box_w, row.box_h), bool(row.snapshot_path),
                      row.source)


def _load_motion(ids: list[int]) -> dict[tuple[str, int], Event]:
    rows = db.session.execute(select(MotionEvent, Camera.name)
                              .join(Camera, Camera.id == MotionEvent.camera_id)
                              .where(MotionEvent.id.in_(ids)))
    return {(SOURCE_MOTION, row.id): motion_item(row, camera) for row, camera in rows}


def _load_faces(ids: list[int]) -> dict[tuple[str, int], Event]:
    rows = db.session.execute(select(FaceSighting, Camera.name, Person.name)
                              .join(Camera, Camera.id == FaceSighting.camera_id)
                              .outerjoin(Person, Person.id == FaceSighting.person_id)
                              .where(FaceSighting.id.in_(ids), FaceSighting.erased_at.is_(None)))
    return {(SOURCE_FACE, row.id): FaceItem(
        row.id, camera, row.start_time, row.end_time, person, row.person_id, row.distance,
        (row.box_x, row.box_y, row.box_w, row.box_h), row.face_size, bool(row.crop_path))
        for row, camera, person in rows}


def _load(keys: list[tuple[str, int]]) -> list[Event]:
    alert_ids = [key for source, key in keys if source == SOURCE_ALERT]
    outage_ids = [key for source, key in keys if source == SOURCE_OUTAGE]
    motion_ids = [key for source, key in keys if source == SOURCE_MOTION]
    face_ids = [key for source, key in keys if source == SOURCE_FACE]
    loaded: dict[tuple[str, int], Event] = {}
    if motion_ids:
        loaded.update(_load_motion(motion_ids))
    if face_ids:
        loaded.update(_load_faces(face_ids))
    if alert_ids:
        for alert in db.session.scalars(select(Alert).where(Alert.id.in_(alert_ids))):
            loaded[(SOURCE_ALERT, alert.id)] = alert_event(alert)
    if outage_ids:
        rows = db.session.execute(
            select(Outage.id, Camera.name, Outage.started_at, Outage.ended_at, Outage.reason,
                   Outage.detail, Outage.backfilled_seconds, Outage.dropped_seconds)
            .join(Camera, Camera.id == Outage.camera_id).where(Outage.id.in_(outage_ids)))
        for outage_id, camera, start, end, reason, detail, filled, dropped in rows:
            loaded[(SOURCE_OUTAGE, outage_id)] = OutageEvent(
                outage_id, camera, start, end, reason, redact(detail or ""),
                backfilled_seconds=filled or 0.0, dropped_seconds=dropped or 0.0)
    return [loaded[key] for key in keys if key in loaded]


def events(filters: EventFilters, limit: int = 50, offset: int = 0) -> EventPage:
    """Return one page of the alerts, outages and motion events matching ``filters``, newest
    first."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    offset = max(0, offset)
    query = _keys(filters)
    if query is None:
        return EventPage([], False, limit, offset)
    # One more row than asked tells whether a next page exists, without counting the matches.
    # A plain core query: name the catalog's bind (the session has two).
    result = db.session.execute(query.limit(limit + 1).offset(offset),
                                bind_arguments={"mapper": Alert})
    keys = [(source, key) for source, key in result]
    return EventPage(_load(keys[:limit]), len(keys) > limit, limit, offset)
