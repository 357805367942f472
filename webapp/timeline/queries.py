"""The timeline's data: for each camera, footage spans, gaps with reasons, back-filled spans,
motion density, motion events and face sightings over a stretch of time (docs/design/recording.md, "Timeline").

One day of 16 cameras with 10-s segments is ~138,000 rows: far too many to read within the
100 ms budget (even SQLite's window functions over them took over a second on a busy machine).
So footage is found per run, not per segment (`span_edges`): a few index seeks of
``ix_segments_run_status_start`` (catalog 0009) per run. The segment being written is not in ``segments`` yet: while the
hub says the camera is live, ``camera_status.last_segment_end`` up to now counts as footage.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, Result, ScalarSelect, Select, and_, func, or_, select

from nvrlib.catalog.models import (
    MAX_EVENT_SECONDS, Camera, CameraStatus, FaceSighting, MotionEvent, Person, Run, Segment,
)

from ..cameras_service import STALE_AFTER
from ..catalog_queries import (
    MAX_SEGMENT, STATUS_OK, TILE_TOLERANCE_SECONDS, Gap, Interval, gaps_between, label_gaps,
    merge_intervals, outages_by_camera,
)
from ..extensions import db
from ..security import now as app_now

# A motion event that started longer than this before the range is left out of it: the bound
# keeps the scan of ix_motion_camera_start to a short range, as MAX_SEGMENT does for segments.
MAX_MOTION_EVENT = dt.timedelta(hours=1)
MAX_EVENTS_PER_CAMERA = 1000  # markers beyond these are dropped (the density still counts all)
MAX_FACES_PER_CAMERA = 1000  # people markers beyond these are dropped
NOT_PLAYABLE = ("missing", "deleting")  # segments.status of a row whose file is (being) gone
BACKFILL_KIND = "backfill"  # runs.kind of a run uploaded from an edge's spool
# (start, end, backfilled, id of its first segment or None) of a piece of footage
Piece = tuple[dt.datetime, dt.datetime, bool, "int | None"]


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
    end_lost: bool = False  # its end never came (its edge died): ``end`` is its start


@dataclass(frozen=True)
class FaceMark:
    """One face sighting on the timeline: who (None: unknown) and when it started."""

    id: int
    start: dt.datetime
    person: str | None
    person_id: int | None


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
    faces: list[FaceMark] = field(default_factory=list)
    writing_since: dt.datetime | None = None  # where the segment being written starts (live)


@dataclass(frozen=True)
class LiveStatus:
    """Where the segment being written of a live camera starts (None: not live)."""

    since: dt.datetime | None


def _execute(query: Select) -> Result:
    # Core execution on the catalog's connection: the ORM's row handling costs more than the
    # queries themselves here (as in catalog_queries).
    return db.session.connection(bind_arguments={"mapper": Segment}).execute(query)


def _in_range(start: dt.datetime, end: dt.datetime) -> ColumnElement[bool]:
    """Segments overlapping ``[start, end)`` (bounded below, as in catalog_queries)."""
    return and_(Segment.start_time >= start - MAX_SEGMENT, Segment.start_time < end,
                Segment.end_time > start)


def _run_probe(column: ColumnElement, start: dt.datetime, end: dt.datetime,
               last: bool = False) -> ScalarSelect:
    """The ``column`` of a run's first (or last) playable segment in the range: one index seek."""
    order = Segment.start_time.desc() if last else Segment.start_time
    return (select(column).where(Segment.run_id == Run.id, Segment.status == STATUS_OK,
                                 _in_range(start, end))
            .order_by(order).limit(1).scalar_subquery())


def _live_run_pieces(camera_ids: Sequence[int], start: dt.datetime, end: dt.datetime,
                     ) -> tuple[list[tuple[int, str, Piece]], list[str]]:
    """Return (camera id, run id, piece) of each live run's footage, and the back-fill runs."""
    query = (select(Run.id, Run.camera_id, Run.kind,
                    _run_probe(Segment.start_time, start, end),
                    _run_probe(Segment.id, start, end),
                    _run_probe(Segment.end_time, start, end, last=True))
             .where(Run.camera_id.in_(list(camera_ids)), Run.started_at < end,
                    or_(Run.ended_at.is_(None), Run.ended_at > start - MAX_SEGMENT)))
    pieces, backfill_runs = [], []
    for run_id, camera_id, kind, first_start, first_id, last_end in _execute(query):
        if kind == BACKFILL_KIND:
            backfill_runs.append(run_id)
        elif first_start is not None and last_end is not None:
            pieces.append((camera_id, run_id, (first_start, last_end, False, first_id)))
    return pieces, backfill_runs


def _holes(run_ids: Sequence[str], start: dt.datetime, end: dt.datetime,
           ) -> dict[str, list[tuple[dt.datetime, dt.datetime]]]:
    """Return, per run, its segments in range that are not playable (missing, being deleted)."""
    query = (select(Segment.run_id, Segment.start_time, Segment.end_time)
             .where(Segment.run_id.in_(list(run_ids)),
                    Segment.status.in_(NOT_PLAYABLE),
                    _in_range(start, end)))
    holes: dict[str, list[tuple[dt.datetime, dt.datetime]]] = defaultdict(list)
    for run_id, hole_start, hole_end in _execute(query):
        holes[run_id].append((hole_start, hole_end))
    return holes


def _exact_pieces(camera_ids: Sequence[int], backfill_runs: Sequence[str], start: dt.datetime,
                  end: dt.datetime) -> list[tuple[int, Piece]]:
    """Return every playable segment in range of the back-fill runs and of no run at all."""
    query = (select(Segment.camera_id, Segment.start_time, Segment.end_time, Segment.backfilled,
                    Segment.id)
             .where(Segment.status == STATUS_OK, _in_range(start, end),
                    or_(Segment.run_id.in_(list(backfill_runs)),
                        and_(Segment.run_id.is_(None), Segment.camera_id.in_(list(camera_ids)))))
             .order_by(Segment.start_time, Segment.id))
    return [(camera_id, (seg_start, seg_end, bool(backfilled), seg_id))
            for camera_id, seg_start, seg_end, backfilled, seg_id in _execute(query)]


def _cut(piece: Piece, holes: Sequence[tuple[dt.datetime, dt.datetime]]) -> list[Piece]:
    """Return what is left of ``piece`` once the ``holes`` are cut out of it."""
    left = [piece]
    for hole_start, hole_end in sorted(holes):
        last_start, last_end, backfilled, first_id = left.pop()
        if hole_start > last_start:
            left.append((last_start, min(hole_start, last_end), backfilled, first_id))
        if hole_end < last_end:
            left.append((hole_end, last_end, backfilled, None))
        if not left:
            break
    return left


def span_edges(camera_ids: Sequence[int], start: dt.datetime, end: dt.datetime,
               ) -> dict[int, list[Piece]]:
    """Return, per camera id, the pieces of footage in range (unmerged, unclipped).

    A live run's segments tile by construction (the segmenter cuts one continuous stream and
    the catalog starts each segment where the last one ended), so its footage in range is
    from its first playable segment to its last, less the segments that are not playable:
    three index seeks per run instead of a read of every segment. Back-fill runs (which skip
    what live footage already covers) and segments without a run are read one by one.
    """
    run_pieces, backfill_runs = _live_run_pieces(camera_ids, start, end)
    holes = _holes([run_id for _, run_id, _ in run_pieces], start, end)
    edges: dict[int, list[Piece]] = defaultdict(list)
    for camera_id, run_id, piece in run_pieces:
        edges[camera_id].extend(_cut(piece, holes.get(run_id, [])))
    for camera_id, piece in _exact_pieces(camera_ids, backfill_runs, start, end):
        edges[camera_id].append(piece)
    return edges


def live_status(camera_ids: Sequence[int], current: dt.datetime) -> dict[int, LiveStatus]:
    """Return where each live camera's segment being written starts (the hub's live status)."""
    rows = _execute(
        select(CameraStatus.camera_id, CameraStatus.online, CameraStatus.updated_at,
               CameraStatus.last_segment_end, CameraStatus.connected_since)
        .where(CameraStatus.camera_id.in_(list(camera_ids))))
    statuses = {}
    for camera_id, online, updated_at, last_end, connected in rows:
        fresh = updated_at is not None and current - updated_at <= STALE_AFTER
        since = last_end or connected
        statuses[camera_id] = LiveStatus(since if online and fresh and since else None)
    return statuses


def _seconds_since(column: ColumnElement, origin: dt.datetime) -> ColumnElement:
    """SQL for the seconds from ``origin`` to a time column (SQLite or PostgreSQL)."""
    if db.session.get_bind(mapper=Segment).dialect.name == "sqlite":
        naive = origin.astimezone(dt.timezone.utc).replace(tzinfo=None).isoformat(" ")
        return (func.julianday(column) - func.julianday(naive)) * 86400.0
    return func.extract("epoch", column - origin)


def motion_between(camera_ids: Sequence[int], start: dt.datetime,
                   end: dt.datetime) -> dict[int, list[MotionMark]]:
    """Return each camera's motion events overlapping ``[start, end)``, oldest first."""
    # Times come back as seconds from ``start``: a day of busy cameras has thousands of
    # events, and parsing their timestamps cost more than the query.
    query = (select(MotionEvent.id, MotionEvent.camera_id,
                    _seconds_since(MotionEvent.start_time, start),
                    _seconds_since(MotionEvent.end_time, start),
                    MotionEvent.score, MotionEvent.snapshot_path.is_not(None))
             .where(MotionEvent.camera_id.in_(list(camera_ids)), MotionEvent.start_time < end,
                    MotionEvent.start_time >= start - MAX_MOTION_EVENT,
                    or_(MotionEvent.end_time.is_(None), MotionEvent.end_time > start))
             .order_by(MotionEvent.camera_id, MotionEvent.start_time, MotionEvent.id))
    events: dict[int, list[MotionMark]] = defaultdict(list)
    second = dt.timedelta(seconds=1)
    # an event still open after the longest any lasts lost its end (its edge died mid-event):
    # it is a mark at its start, not motion running to now
    lost_before = app_now() - dt.timedelta(seconds=MAX_EVENT_SECONDS)
    for event_id, camera_id, begins, ends, score, snapshot in _execute(query):
        begun = start + round(float(begins), 3) * second  # PostgreSQL: a Decimal
        lost = ends is None and begun < lost_before
        ended = start + round(float(ends), 3) * second if ends is not None else \
            (begun if lost else None)
        events[camera_id].append(MotionMark(event_id, begun, ended, float(score or 0.0),
                                            bool(snapshot), lost))
    return events


def faces_between(camera_ids: Sequence[int], start: dt.datetime,
                  end: dt.datetime) -> dict[int, list[FaceMark]]:
    """Return each camera's face sightings starting in ``[start, end)``, oldest first (at most
    MAX_FACES_PER_CAMERA each; erased ones never)."""
    query = (select(FaceSighting.id, FaceSighting.camera_id,
                    _seconds_since(FaceSighting.start_time, start), Person.name, Person.id)
             .outerjoin(Person, Person.id == FaceSighting.person_id)
             .where(FaceSighting.camera_id.in_(list(camera_ids)),
                    FaceSighting.start_time >= start, FaceSighting.start_time < end,
                    FaceSighting.erased_at.is_(None))
             .order_by(FaceSighting.camera_id, FaceSighting.start_time, FaceSighting.id))
    marks: dict[int, list[FaceMark]] = defaultdict(list)
    second = dt.timedelta(seconds=1)
    for sighting_id, camera_id, begins, person, person_id in _execute(query):
        if len(marks[camera_id]) < MAX_FACES_PER_CAMERA:
            marks[camera_id].append(FaceMark(sighting_id,
                                             start + round(float(begins), 3) * second,
                                             person, person_id))
    return marks


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


def _camera_footage(edges: list[Piece],
                    live: LiveStatus, start: dt.datetime, end: dt.datetime,
                    current: dt.datetime) -> tuple[list[Span], list[Interval]]:
    """Merge a camera's span edges (and its live segment) into footage and back-filled spans."""
    pieces = [(max(a, start), min(b, end), first, False) for a, b, _, first in edges]
    if live.since is not None and live.since < min(current, end):
        pieces.append((max(live.since, start), min(current, end), None, True))
    pieces.sort(key=lambda piece: piece[0])
    footage: list[Span] = []
    tolerance = dt.timedelta(seconds=TILE_TOLERANCE_SECONDS)
    for piece_start, piece_end, first, is_live in pieces:
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


def camera_ids(names: Sequence[str]) -> dict[str, tuple[int, dt.datetime]]:
    """Return the id and first-seen time of the cameras named (unknown names are left out)."""
    rows = _execute(select(Camera.name, Camera.id, Camera.first_seen)
                    .where(Camera.name.in_(list(names))))
    return {name: (camera_id, first_seen) for name, camera_id, first_seen in rows}


def _gaps_from(first_seen: dt.datetime, footage: Sequence[Span], start: dt.datetime,
               gaps_end: dt.datetime) -> dt.datetime:
    """Where a camera's gaps may begin: not before it existed (nor after its first footage)."""
    existed = min(first_seen, footage[0].start) if footage else first_seen
    return min(max(start, existed), gaps_end)


def timelines(names: Sequence[str], start: dt.datetime, end: dt.datetime, resolution: float,
              current: dt.datetime) -> list[CameraTimeline]:
    """Return the timeline of each named camera (known ones, in the order given)."""
    ids = camera_ids(names)
    wanted = [name for name in names if name in ids]
    if not wanted:
        return []
    id_list = [ids[name][0] for name in wanted]
    edges = span_edges(id_list, start, end)
    statuses = live_status(id_list, current)
    motion = motion_between(id_list, start, end)
    faces = faces_between(id_list, start, end)
    gaps_end = max(start, min(end, current))  # the future is not missing footage
    outages = outages_by_camera(id_list, start, gaps_end, current)
    result = []
    for name in wanted:
        camera_id, first_seen = ids[name]
        live = statuses.get(camera_id, LiveStatus(None))
        footage, backfilled = _camera_footage(edges.get(camera_id, []), live, start, end,
                                              current)
        gaps_start = _gaps_from(first_seen, footage, start, gaps_end)
        gaps = label_gaps(gaps_between(footage, gaps_start, gaps_end),
                          outages.get(camera_id, []))
        events = motion.get(camera_id, [])
        result.append(CameraTimeline(
            name, live.since is not None, footage, backfilled, gaps,
            motion_density(events, start, end, resolution, current),
            events[:MAX_EVENTS_PER_CAMERA], faces.get(camera_id, []), live.since))
    return result

