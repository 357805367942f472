"""Read-only queries over the recordings catalog, shared by the recordings pages and the API.

Every query that looks for footage overlapping a time range ``[start, end)`` says so as
``start_time < end AND end_time > start`` plus a lower bound ``start_time >= start -
MAX_SEGMENT_SECONDS``: no segment is longer than that, so the bound loses nothing and keeps the
scan of ``ix_segments_camera_start`` / ``ix_segments_start`` to a bounded range of the index
instead of everything before ``end``. Sort keys come from `SORTS`, never from a request.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from sqlalchemy import ColumnElement, Result, Select, and_, exists, func, literal, or_, select

from nvrlib.catalog.models import Camera, MotionEvent, Outage, Segment, UTCDateTime
from nvrlib.names import DEFAULT_HUB

from .extensions import db

logger = logging.getLogger(__name__)

UTC = dt.timezone.utc
# The longest segment the hub writes (recorder.config: segment_seconds is at most 3600).
MAX_SEGMENT_SECONDS = 3600
MAX_SEGMENT = dt.timedelta(seconds=MAX_SEGMENT_SECONDS)
# Two segments tile when one starts within this of where the other ended (about a frame's
# jitter, with room for the rounding of recovered segments).
TILE_TOLERANCE_SECONDS = 1.5
MAX_PAGE_SIZE = 500
STATUS_OK = "ok"
STATUS_MISSING = "missing"
STATUSES = (STATUS_OK, STATUS_MISSING)
# The sort keys a request may name, and the columns they mean: the one place they are mapped.
SORTS = {
    "time": Segment.start_time,
    "duration": Segment.duration,
    "size": Segment.size_bytes,
}
ORDERS = ("desc", "asc")
DEFAULT_SORT = "time"
DEFAULT_ORDER = "desc"


class QueryError(ValueError):
    """A query asked for something the catalog queries do not offer (an unknown sort key)."""


@dataclass(frozen=True)
class SearchFilters:
    """What a search keeps; None means "any". Times are aware; the range matches by overlap."""

    camera: str | None = None
    location: str | None = None  # case-insensitive substring of the segment's location
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    min_duration: float | None = None
    max_duration: float | None = None
    statuses: tuple[str, ...] = (STATUS_OK,)
    motion: bool = False  # only segments that overlap a motion event of their camera


class SegmentRow(NamedTuple):
    """One segment as the pages, the API and exports see it (an export of 24 h reads ~8,640)."""

    id: int
    camera: str
    location: str
    start: dt.datetime
    end: dt.datetime
    duration: float
    size: int
    status: str
    run_id: str | None
    path: str
    backfilled: bool = False  # uploaded later from the edge's spool (ingest protocol v2)
    hub_id: str = DEFAULT_HUB  # the hub whose storage holds the file (``path`` is relative to it)


# Where a segment sits in time, all that playlists and timelines need of it:
# (id, start, end, duration, run_id). A plain tuple on purpose: a 24-hour playlist holds ~8,640
# of them, and CPython stops tracking tuples of plain values in its garbage collector (not named
# tuples), so they never pile up as survivors that trigger a full collection (50-70 ms) mid-request.
Span = tuple[int, dt.datetime, dt.datetime, float, str | None]


@dataclass(frozen=True)
class Page:
    """One page of search results; ``has_next`` tells whether another page follows."""

    rows: list[SegmentRow]
    has_next: bool
    limit: int
    offset: int


@dataclass(frozen=True)
class Interval:
    """A stretch of time ``[start, end)``."""

    start: dt.datetime
    end: dt.datetime

    @property
    def seconds(self) -> float:
        """Return the length in seconds."""
        return (self.end - self.start).total_seconds()


# What each outage reason (nvrlib.catalog.models.Outage.reason) means, in words for people.
OUTAGE_REASONS: dict[str, str] = {
    "clean_shutdown": "edge shut down cleanly",
    "connection_lost": "connection lost",
    "stalled": "stalled (no data)",
    "failing": "ffmpeg failing",
    "disconnected": "disconnected by an admin",
    "disabled": "disabled",
    "hub_stopped": "hub stopped",
    "restarted": "recorder restarted",
}


def outage_reason_text(reason: str) -> str:
    """Return an outage reason in words (an unknown code is shown as it is)."""
    return OUTAGE_REASONS.get(reason, reason.replace("_", " "))


@dataclass(frozen=True)
class OutageSpan(Interval):
    """An outage of a camera, clipped to the stretch of time asked about."""

    reason: str = ""
    detail: str = ""
    ongoing: bool = False  # still open: it runs to "now"

    @property
    def text(self) -> str:
        """Return the reason in words."""
        return outage_reason_text(self.reason)


@dataclass(frozen=True)
class Gap(Interval):
    """A stretch without footage, with the outages that overlap it (if any)."""

    outages: tuple[OutageSpan, ...] = ()

    @property
    def reasons(self) -> tuple[str, ...]:
        """Return the reasons of the outages, in order, once each."""
        return tuple(dict.fromkeys(outage.reason for outage in self.outages))

    @property
    def label(self) -> str:
        """Return the reasons in words (``""`` for a gap no outage explains)."""
        return ", ".join(outage_reason_text(reason) for reason in self.reasons)


@dataclass(frozen=True)
class Timeline:
    """Where a camera has footage on one day, where it has none, and the outages that say why."""

    camera: str
    day: dt.date
    start: dt.datetime  # the day's first instant (UTC)
    end: dt.datetime  # the next day's first instant (UTC)
    covered: list[Interval] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    outages: list[OutageSpan] = field(default_factory=list)  # clipped to the day and to now
    # the stretches of ``covered`` that were back-filled from an edge's spool after an outage
    backfilled: list[Interval] = field(default_factory=list)

    @property
    def covered_seconds(self) -> float:
        """Return how many seconds of the day have footage."""
        return sum(interval.seconds for interval in self.covered)

    def backfilled_seconds_in(self, interval: Interval) -> float:
        """Return how many seconds of ``interval`` were back-filled from an edge's spool."""
        return sum(max(0.0, (min(b.end, interval.end) - max(b.start, interval.start))
                       .total_seconds()) for b in self.backfilled)


def iso_utc(value: dt.datetime) -> str:
    """Format an aware time as ISO-8601 UTC with milliseconds: ``2026-03-01T12:00:00.000Z``."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    # %-formatting of the fields: about twice as fast as strftime, once per playlist segment.
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (
        value.year, value.month, value.day, value.hour, value.minute, value.second,
        value.microsecond // 1000)


def tiles(previous_end: dt.datetime, next_start: dt.datetime) -> bool:
    """Tell whether a segment starting at ``next_start`` follows one ending at ``previous_end``."""
    return abs((next_start - previous_end).total_seconds()) <= TILE_TOLERANCE_SECONDS


def camera_names() -> list[str]:
    """Return the names of every camera in the catalog, sorted."""
    return list(db.session.scalars(select(Camera.name).order_by(Camera.name)))


def camera_by_name(name: str) -> Camera | None:
    """Return the camera called ``name``, or None."""
    return db.session.scalar(select(Camera).where(Camera.name == name))


def _camera_id(name: str) -> int | None:
    return db.session.scalar(select(Camera.id).where(Camera.name == name))


def _overlapping(query: Select, start: dt.datetime | None, end: dt.datetime | None) -> Select:
    if end is not None:
        query = query.where(Segment.start_time < end)
    if start is not None:
        query = query.where(Segment.end_time > start, Segment.start_time >= start - MAX_SEGMENT)
    return query


# Far in the future: an ongoing motion event (end_time NULL) runs until then.
_OPEN_END = dt.datetime(3000, 1, 1, tzinfo=UTC)


def overlaps_motion() -> ColumnElement[bool]:
    """The condition "this segment overlaps a motion event of its camera", two index probes.

    Either an event starts within the segment (a range of ``ix_motion_camera_start``), or the
    last event that started before the segment still runs at its start (one step back on the
    same index). A detector ends one event before it starts the next, so a camera's events do
    not overlap one another and the last one before is the only one that can cover the start.
    """
    starts_inside = exists().where(MotionEvent.camera_id == Segment.camera_id,
                                   MotionEvent.start_time >= Segment.start_time,
                                   MotionEvent.start_time < Segment.end_time)
    last_end = (select(func.coalesce(MotionEvent.end_time,
                                     literal(_OPEN_END, UTCDateTime())))
                .where(MotionEvent.camera_id == Segment.camera_id,
                       MotionEvent.start_time < Segment.start_time)
                .order_by(MotionEvent.start_time.desc()).limit(1)
                .correlate(Segment).scalar_subquery())
    return or_(starts_inside, and_(last_end.is_not(None), last_end > Segment.start_time))


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


_ROW_COLUMNS = (Segment.id, Segment.camera_id, Segment.location, Segment.start_time,
                Segment.end_time, Segment.duration, Segment.size_bytes, Segment.status,
                Segment.run_id, Segment.path, Segment.backfilled, Segment.hub_id)


def _execute(query: Select) -> Result:
    # Core execution on the catalog's connection: the ORM's row handling costs more than the
    # query itself for the thousands of rows of a long playlist, and these are plain columns.
    return db.session.connection(bind_arguments={"mapper": Segment}).execute(query)


def _rows(query: Select, names: dict[int, str]) -> list[SegmentRow]:
    return [SegmentRow(seg_id, names.get(camera_id, "?"), location, start, end, duration, size,
                       status, run_id, path, bool(backfilled), hub_id or DEFAULT_HUB)
            for (seg_id, camera_id, location, start, end, duration, size, status, run_id, path,
                 backfilled, hub_id) in _execute(query)]


def _camera_names_by_id() -> dict[int, str]:
    # The cameras table is small (tens of rows): one read beats a join on every segment query.
    rows = _execute(select(Camera.id, Camera.name))
    return {camera_id: name for camera_id, name in rows}


def search(filters: SearchFilters, sort: str = DEFAULT_SORT, order: str = DEFAULT_ORDER,
           limit: int = 50, offset: int = 0) -> Page:
    """Return one page of segments matching ``filters``, sorted by an allowlisted key."""
    if sort not in SORTS:
        raise QueryError(f"unknown sort key {sort!r}; use one of {', '.join(SORTS)}")
    if order not in ORDERS:
        raise QueryError(f"unknown order {order!r}; use asc or desc")
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    offset = max(0, offset)
    query = select(*_ROW_COLUMNS).where(Segment.status.in_(filters.statuses))
    if filters.camera is not None:
        camera_id = _camera_id(filters.camera)
        if camera_id is None:
            return Page([], False, limit, offset)
        query = query.where(Segment.camera_id == camera_id)
    if filters.location:
        query = query.where(Segment.location.ilike(_like_pattern(filters.location), escape="\\"))
    query = _overlapping(query, filters.start, filters.end)
    if filters.min_duration is not None:
        query = query.where(Segment.duration >= filters.min_duration)
    if filters.max_duration is not None:
        query = query.where(Segment.duration <= filters.max_duration)
    if filters.motion:
        query = query.where(overlaps_motion())
    column = SORTS[sort]
    # The id breaks ties so pages never overlap; in SQLite it is the rowid that every index
    # already ends with, so "time" is still read straight off the index in order.
    ordering = (column.desc(), Segment.id.desc()) if order == "desc" else (column, Segment.id)
    # One more row than asked tells whether a next page exists, without counting the matches.
    rows = _rows(query.order_by(*ordering).limit(limit + 1).offset(offset), _camera_names_by_id())
    return Page(rows[:limit], len(rows) > limit, limit, offset)


def segments_between(camera: str, start: dt.datetime, end: dt.datetime,
                     statuses: Sequence[str] = (STATUS_OK,)) -> list[SegmentRow]:
    """Return a camera's segments overlapping ``[start, end)``, oldest first."""
    camera_id = _camera_id(camera)
    if camera_id is None:
        return []
    query = (select(*_ROW_COLUMNS)
             .where(Segment.camera_id == camera_id, Segment.status.in_(tuple(statuses))))
    query = _overlapping(query, start, end).order_by(Segment.start_time, Segment.id)
    return _rows(query, {camera_id: camera})


def segment_spans(camera: str, start: dt.datetime, end: dt.datetime) -> list[Span]:
    """Return the spans of a camera's playable segments overlapping ``[start, end)``, oldest first.

    The lean twin of `segments_between` for playlists and timelines: five columns instead of ten
    halve the time of a 24-hour playlist (~8,640 rows). Each is a plain `Span` tuple.
    """
    camera_id = _camera_id(camera)
    if camera_id is None:
        return []
    query = (select(Segment.id, Segment.start_time, Segment.end_time, Segment.duration,
                    Segment.run_id)
             .where(Segment.camera_id == camera_id, Segment.status == STATUS_OK))
    query = _overlapping(query, start, end).order_by(Segment.start_time, Segment.id)
    return [tuple(row) for row in _execute(query)]


def segment_hubs(camera: str, start: dt.datetime, end: dt.datetime) -> list[str]:
    """Return the hubs whose storage holds a camera's playable footage in ``[start, end)``."""
    camera_id = _camera_id(camera)
    if camera_id is None:
        return []
    query = (select(Segment.hub_id).distinct()
             .where(Segment.camera_id == camera_id, Segment.status == STATUS_OK))
    return sorted(hub_id for (hub_id,) in _execute(_overlapping(query, start, end)))


def backfilled_spans(camera: str, start: dt.datetime,
                     end: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
    """Return (start, end) of a camera's playable back-filled segments overlapping the range."""
    camera_id = _camera_id(camera)
    if camera_id is None:
        return []
    query = (select(Segment.start_time, Segment.end_time)
             .where(Segment.camera_id == camera_id, Segment.status == STATUS_OK,
                    Segment.backfilled.is_(True)))
    query = _overlapping(query, start, end).order_by(Segment.start_time, Segment.id)
    return [(row[0], row[1]) for row in _execute(query)]


def first_segment(camera: str, start: dt.datetime, end: dt.datetime) -> SegmentRow | None:
    """Return a camera's first playable segment overlapping ``[start, end)``, or None."""
    camera_id = _camera_id(camera)
    if camera_id is None:
        return None
    query = select(*_ROW_COLUMNS).where(Segment.camera_id == camera_id,
                                        Segment.status == STATUS_OK)
    query = _overlapping(query, start, end).order_by(Segment.start_time, Segment.id).limit(1)
    rows = _rows(query, {camera_id: camera})
    return rows[0] if rows else None


def nearest_footage(camera: str, moment: dt.datetime) -> tuple[SegmentRow | None, SegmentRow | None]:
    """Return a camera's playable footage nearest to ``moment``: the last segment that ends at
    or before it, and the first that starts at or after it (either may be None)."""
    camera_id = _camera_id(camera)
    if camera_id is None:
        return None, None
    names = {camera_id: camera}
    mine = select(*_ROW_COLUMNS).where(Segment.camera_id == camera_id, Segment.status == STATUS_OK)
    # both walk ix_segments_camera_start from the moment, one row each way
    before = _rows(mine.where(Segment.start_time <= moment, Segment.end_time <= moment)
                   .order_by(Segment.start_time.desc()).limit(1), names)
    after = _rows(mine.where(Segment.start_time >= moment)
                  .order_by(Segment.start_time).limit(1), names)
    return (before[0] if before else None), (after[0] if after else None)


def segment(segment_id: int) -> SegmentRow | None:
    """Return the segment with catalog id ``segment_id``, whatever its status, or None."""
    query = select(*_ROW_COLUMNS).where(Segment.id == segment_id)
    rows = _rows(query, _camera_names_by_id())
    return rows[0] if rows else None


def merge_intervals(spans: Iterable[tuple[dt.datetime, dt.datetime]]) -> list[Interval]:
    """Merge time spans (sorted by start) that tile or overlap into covered intervals."""
    merged: list[Interval] = []
    for start, end in spans:
        if merged and start <= merged[-1].end + dt.timedelta(seconds=TILE_TOLERANCE_SECONDS):
            if end > merged[-1].end:
                merged[-1] = Interval(merged[-1].start, end)
        else:
            merged.append(Interval(start, end))
    return merged


def gaps_between(covered: Sequence[Interval], start: dt.datetime,
                 end: dt.datetime) -> list[Interval]:
    """Return the parts of ``[start, end)`` that ``covered`` (sorted, disjoint) leaves out."""
    gaps: list[Interval] = []
    cursor = start
    for interval in covered:
        if interval.start > cursor:
            gaps.append(Interval(cursor, min(interval.start, end)))
        cursor = max(cursor, interval.end)
        if cursor >= end:
            break
    if cursor < end:
        gaps.append(Interval(cursor, end))
    return [gap for gap in gaps if gap.end > gap.start]


def day_bounds(day: dt.date, tz: dt.tzinfo) -> tuple[dt.datetime, dt.datetime]:
    """Return the first instants (UTC) of ``day`` and of the next day in time zone ``tz``."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=tz).astimezone(UTC)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=tz).astimezone(UTC)
    return start, end


def outages_between(camera: str, start: dt.datetime, end: dt.datetime,
                    now: dt.datetime | None = None) -> list[OutageSpan]:
    """Return a camera's outages overlapping ``[start, end)``, clipped to it, oldest first.

    An ongoing outage (no end yet) runs to ``now``, or to ``end`` when ``now`` is not given.
    """
    camera_id = _camera_id(camera)
    if camera_id is None:
        return []
    return outages_by_camera([camera_id], start, end, now).get(camera_id, [])


def outages_by_camera(camera_ids: Sequence[int], start: dt.datetime, end: dt.datetime,
                      now: dt.datetime | None = None) -> dict[int, list[OutageSpan]]:
    """Return the outages of several cameras (by id) as `outages_between` does, in one query."""
    query = (select(Outage.camera_id, Outage.started_at, Outage.ended_at, Outage.reason,
                    Outage.detail)
             .where(Outage.camera_id.in_(list(camera_ids)), Outage.started_at < end,
                    or_(Outage.ended_at.is_(None), Outage.ended_at > start))
             .order_by(Outage.started_at, Outage.id))
    spans: dict[int, list[OutageSpan]] = {}
    for camera_id, started, ended, reason, detail in _execute(query):
        stop = ended if ended is not None else (now if now is not None else end)
        clipped = OutageSpan(max(started, start), min(stop, end), reason, detail or "",
                             ended is None)
        if clipped.end > clipped.start:
            spans.setdefault(camera_id, []).append(clipped)
    return spans


def label_gaps(gaps: Sequence[Interval], outages: Sequence[OutageSpan]) -> list[Gap]:
    """Attach to each gap the outages overlapping it (a gap is not split where they start)."""
    return [Gap(gap.start, gap.end,
                tuple(o for o in outages if o.start < gap.end and o.end > gap.start))
            for gap in gaps]


def day_timeline(camera: str, day: dt.date, tz: dt.tzinfo,
                 now: dt.datetime | None = None,
                 writing_since: dt.datetime | None = None) -> Timeline:
    """Return a camera's covered intervals, gaps and outages on ``day`` (in ``tz``).

    Everything is clipped to the day. Gaps and ongoing outages stop at ``now`` when given: the
    future is not missing footage. Each gap carries the reasons of the outages overlapping it.
    ``writing_since`` (a live camera's segment being written starts there) covers up to ``now``.
    """
    day_start, day_end = day_bounds(day, tz)
    spans = [(start, end) for _, start, end, _, _ in segment_spans(camera, day_start, day_end)]
    if writing_since is not None and now is not None:
        spans.append((writing_since, now))
    clipped = sorted((max(start, day_start), min(end, day_end)) for start, end in spans)
    covered = merge_intervals((start, end) for start, end in clipped if end > start)
    gaps_end = day_end if now is None else max(day_start, min(day_end, now))
    outages = outages_between(camera, day_start, gaps_end, now)
    gaps = label_gaps(gaps_between(covered, day_start, gaps_end), outages)
    backfilled = merge_intervals((max(start, day_start), min(end, day_end))
                                 for start, end in backfilled_spans(camera, day_start, day_end))
    return Timeline(camera, day, day_start, day_end, covered, gaps, outages, backfilled)
