"""The timeline's data: for each camera, footage spans, gaps with reasons, back-filled spans,
motion density and motion events over a stretch of time (docs/design/recording.md, "Timeline").

One day of 16 cameras with 10-s segments is ~138,000 rows: far too many to read into Python
within the 100 ms budget. So the database merges them: a window query (``LAG``/``LEAD`` over
each camera's segments in time order) keeps only the rows that open or close a span (a
segment that does not tile with the one before or after it, or whose ``backfilled`` differs),
and Python pairs them up. The segment being written is not in ``segments`` yet: while the
hub says the camera is live, ``camera_status.last_segment_end`` up to now counts as footage.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, func, or_, select

from nvrlib.catalog.models import Camera, CameraStatus, MotionEvent, Segment

from ..cameras_service import STALE_AFTER
from ..catalog_queries import (
    MAX_SEGMENT, STATUS_OK, TILE_TOLERANCE_SECONDS, Gap, Interval, gaps_between, label_gaps,
    merge_intervals, outages_between,
)
from ..extensions import db

# A motion event longer than this is cut from the timeline's view of earlier days: the bound
# keeps the scan of ix_motion_camera_start to a range, as MAX_SEGMENT does for segments.
MAX_MOTION_EVENT = dt.timedelta(hours=24)
MAX_EVENTS_PER_CAMERA = 1000  # markers beyond these are dropped (the density still counts all)


@dataclass(frozen=True)
class Span(Interval):
    """A stretch of footage of one camera, from tiling segments (or the segment being written)."""

    first_segment: int | None = None  # the catalog id of its first segment (None: live only)
    live: bool = False  # it ends with the segment being written


@dataclass(frozen=True)
class MotionMark:
    """One motion event on the timeline (``end`` is None while it goes on)."""

    id: int
    start: dt.datetime
    end: dt.datetime | None
    score: float
    has_snapshot: bool


@dataclass(frozen=True)
class CameraTimeline:
    """What one camera has over the asked stretch of time."""

    camera: str
    live: bool
    footage: list[Span] = field(default_factory=list)
    backfilled: list[Interval] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    motion_counts: list[int] = field(default_factory=list)
    motion: list[MotionMark] = field(default_factory=list)


@dataclass(frozen=True)
class LiveStatus:
    """Where the segment being written of a live camera starts (None: not live)."""

    since: dt.datetime | None


def _seconds_after(later: ColumnElement, earlier: ColumnElement) -> ColumnElement:
    """Return SQL for the seconds from ``earlier`` to ``later`` (SQLite or PostgreSQL)."""
    if db.session.get_bind(mapper=Segment).dialect.name == "sqlite":
        return (func.julianday(later) - func.julianday(earlier)) * 86400.0
    return func.extract("epoch", later - earlier)


def span_edges(camera_ids: Sequence[int], start: dt.datetime, end: dt.datetime,
               ) -> dict[int, list[tuple[dt.datetime, dt.datetime, bool, int]]]:
    """Return, per camera id, (start, end, backfilled, first id) of runs of tiling segments."""
    order = (Segment.start_time, Segment.id)
    window = {"partition_by": Segment.camera_id, "order_by": order}
    inner = (select(Segment.id, Segment.camera_id, Segment.start_time, Segment.end_time,
                    Segment.backfilled,
                    func.lag(Segment.end_time).over(**window).label("prev_end"),
                    func.lead(Segment.start_time).over(**window).label("next_start"),
                    func.lag(Segment.backfilled).over(**window).label("prev_backfilled"),
                    func.lead(Segment.backfilled).over(**window).label("next_backfilled"))
             .where(Segment.camera_id.in_(list(camera_ids)), Segment.status == STATUS_OK,
                    Segment.start_time < end, Segment.end_time > start,
                    Segment.start_time >= start - MAX_SEGMENT)
             .subquery())
    opens = or_(inner.c.prev_end.is_(None),
                _seconds_after(inner.c.start_time, inner.c.prev_end) > TILE_TOLERANCE_SECONDS,
                inner.c.prev_backfilled != inner.c.backfilled)
    closes = or_(inner.c.next_start.is_(None),
                 _seconds_after(inner.c.next_start, inner.c.end_time) > TILE_TOLERANCE_SECONDS,
                 inner.c.next_backfilled != inner.c.backfilled)
    query = (select(inner.c.id, inner.c.camera_id, inner.c.start_time, inner.c.end_time,
                    inner.c.backfilled, opens.label("opens"), closes.label("closes"))
             .where(or_(opens, closes))
             .order_by(inner.c.camera_id, inner.c.start_time, inner.c.id))
    spans: dict[int, list[tuple[dt.datetime, dt.datetime, bool, int]]] = defaultdict(list)
    opened: dict[int, tuple[dt.datetime, int]] = {}
    conn = db.session.connection(bind_arguments={"mapper": Segment})
    for seg_id, camera_id, seg_start, seg_end, backfilled, is_open, is_close in conn.execute(query):
        if is_open or camera_id not in opened:
            opened[camera_id] = (seg_start, seg_id)
        if is_close:
            span_start, first_id = opened.pop(camera_id)
            spans[camera_id].append((span_start, seg_end, bool(backfilled), first_id))
    return spans


def live_status(camera_ids: Sequence[int], current: dt.datetime) -> dict[int, LiveStatus]:
    """Return where each live camera's segment being written starts (the hub's live status)."""
    rows = db.session.execute(
        select(CameraStatus.camera_id, CameraStatus.online, CameraStatus.updated_at,
               CameraStatus.last_segment_end, CameraStatus.connected_since)
        .where(CameraStatus.camera_id.in_(list(camera_ids))))
    statuses = {}
    for camera_id, online, updated_at, last_end, connected in rows:
        fresh = updated_at is not None and current - updated_at <= STALE_AFTER
        since = last_end or connected
        statuses[camera_id] = LiveStatus(since if online and fresh and since else None)
    return statuses


def motion_between(camera_ids: Sequence[int], start: dt.datetime,
                   end: dt.datetime) -> dict[int, list[MotionMark]]:
    """Return each camera's motion events overlapping ``[start, end)``, oldest first."""
    query = (select(MotionEvent.id, MotionEvent.camera_id, MotionEvent.start_time,
                    MotionEvent.end_time, MotionEvent.score, MotionEvent.snapshot_path)
             .where(MotionEvent.camera_id.in_(list(camera_ids)), MotionEvent.start_time < end,
                    MotionEvent.start_time >= start - MAX_MOTION_EVENT,
                    or_(MotionEvent.end_time.is_(None), MotionEvent.end_time > start))
             .order_by(MotionEvent.camera_id, MotionEvent.start_time, MotionEvent.id))
    events: dict[int, list[MotionMark]] = defaultdict(list)
    for event_id, camera_id, ev_start, ev_end, score, snapshot in db.session.execute(query):
        events[camera_id].append(MotionMark(event_id, ev_start, ev_end, float(score or 0.0),
                                            bool(snapshot)))
    return events


def motion_density(events: Sequence[MotionMark], start: dt.datetime, end: dt.datetime,
                   resolution: float, current: dt.datetime) -> list[int]:
    """Count, per bucket of ``resolution`` seconds from ``start``, the events overlapping it."""
    total = (end - start).total_seconds()
    buckets = max(1, int(-(-total // resolution)))
    counts = [0] * buckets
    for event in events:
        stop = event.end or max(current, event.start)
        first = max(0, int((event.start - start).total_seconds() // resolution))
        last_second = (min(stop, end) - start).total_seconds()
        # An instant event (start == end) still counts in its bucket.
        last = min(buckets - 1, int(max(last_second - 1e-6, 0) // resolution))
        for bucket in range(first, max(first, last) + 1):
            counts[bucket] += 1
    return counts


def _camera_footage(edges: list[tuple[dt.datetime, dt.datetime, bool, int]],
                    live: LiveStatus, start: dt.datetime, end: dt.datetime,
                    current: dt.datetime) -> tuple[list[Span], list[Interval]]:
    """Merge a camera's span edges (and its live segment) into footage and back-filled spans."""
    pieces = [(max(a, start), min(b, end), first) for a, b, _, first in edges]
    if live.since is not None and live.since < min(current, end):
        pieces.append((max(live.since, start), min(current, end), None))
    pieces.sort(key=lambda piece: piece[0])
    footage: list[Span] = []
    tolerance = dt.timedelta(seconds=TILE_TOLERANCE_SECONDS)
    for piece_start, piece_end, first in pieces:
        is_live = first is None
        if footage and piece_start <= footage[-1].end + tolerance:
            last = footage[-1]
            footage[-1] = Span(last.start, max(last.end, piece_end),
                               last.first_segment if last.first_segment is not None else first,
                               last.live or is_live)
        elif piece_end > piece_start:
            footage.append(Span(piece_start, piece_end, first, is_live))
    backfilled = merge_intervals((max(a, start), min(b, end))
                                 for a, b, flag, _ in edges if flag)
    return footage, backfilled


def camera_ids(names: Sequence[str]) -> dict[str, int]:
    """Return the ids of the cameras named (unknown names are left out)."""
    rows = db.session.execute(select(Camera.name, Camera.id).where(Camera.name.in_(list(names))))
    return {name: camera_id for name, camera_id in rows}


def timelines(names: Sequence[str], start: dt.datetime, end: dt.datetime, resolution: float,
              current: dt.datetime) -> list[CameraTimeline]:
    """Return the timeline of each named camera (known ones, in the order given)."""
    ids = camera_ids(names)
    wanted = [name for name in names if name in ids]
    if not wanted:
        return []
    id_list = [ids[name] for name in wanted]
    edges = span_edges(id_list, start, end)
    statuses = live_status(id_list, current)
    motion = motion_between(id_list, start, end)
    gaps_end = max(start, min(end, current))  # the future is not missing footage
    result = []
    for name in wanted:
        camera_id = ids[name]
        live = statuses.get(camera_id, LiveStatus(None))
        footage, backfilled = _camera_footage(edges.get(camera_id, []), live, start, end,
                                              current)
        outages = outages_between(name, start, gaps_end, current)
        gaps = label_gaps(gaps_between(footage, start, gaps_end), outages)
        events = motion.get(camera_id, [])
        result.append(CameraTimeline(
            name, live.since is not None, footage, backfilled, gaps,
            motion_density(events, start, end, resolution, current),
            events[:MAX_EVENTS_PER_CAMERA]))
    return result

