"""Writes to the recordings catalog. Every method runs on the hub's single catalog thread."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Connection, Engine, bindparam, insert, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from nvrlib.catalog.models import Camera, Outage, Run, Segment, utcnow
from nvrlib.names import DEFAULT_HUB
from recorder.store.probe import ProbeError, probe
from recorder.store.storage import Storage, durable_move, fsync_dir
from recorder.store.ts_tail import last_video_pts, unwrap_near

logger = logging.getLogger(__name__)

_INCOMING_NAME_RE = re.compile(r"(?P<run>[0-9a-f]{8,16})-(?P<seq>\d{6,})\.ts")
# Cataloged segments of a camera tile time up to a frame's jitter: gaps this small between
# them (or at a backfilled segment's edges) still count as covered.
COVER_TOLERANCE = dt.timedelta(seconds=0.1)


@dataclasses.dataclass
class RunInfo:
    """What the catalog needs to know about a running ffmpeg to place its segments in time."""

    run_id: str
    camera: str
    location: str
    anchor_wall: dt.datetime
    anchor_pts: float | None
    # True when the anchor came from the stream (X-NVR-Stream-Epoch) rather than a guess.
    anchor_exact: bool = False
    # Seconds this run's ffmpeg subtracts from the stream's PTS (-output_ts_offset): the run's
    # files, list lines and anchor_pts are all in that shifted timeline, so nothing else needs
    # it; the segmenter uses it to hand a learned anchor back in the stream's own timeline.
    pts_offset: float = 0.0
    codec: str = ""
    width: int = 0
    height: int = 0
    audio_codec: str | None = None  # None until the first segment is probed; "" without sound
    entries: int = 0
    # an upload from an edge's spool (kind "backfill"): its segments are marked and deduplicated
    backfilled: bool = False

    def wall(self, pts: float) -> dt.datetime:
        """Map a PTS (seconds) of this run's stream to a UTC wall-clock time."""
        anchor_pts = self.anchor_pts if self.anchor_pts is not None else pts
        return self.anchor_wall + dt.timedelta(seconds=pts - anchor_pts)

    def seconds_after(self, origin: dt.datetime, pts: float) -> float | None:
        """Map a PTS of this run to seconds after ``origin`` (a request's PTS 0), via the anchor.

        The run's timeline may be shifted against the request's (ffmpeg options), so the
        two are related only through the anchor; None while the anchor is not known yet.
        """
        if self.anchor_pts is None:
            return None
        return (pts - self.anchor_pts) + (self.anchor_wall - origin).total_seconds()


@dataclasses.dataclass(frozen=True)
class FinishedSegment:
    """A segment now on disk and in the catalog."""

    id: int
    camera: str
    path: Path
    start: dt.datetime
    end: dt.datetime
    duration: float
    size_bytes: int
    run: RunInfo | None = None
    # the last video frame's PTS in the run's timeline (from the file's own PES headers)
    last_pts: float | None = None
    # a backfilled segment wholly covered by cataloged footage: deleted, not cataloged (id 0)
    deduplicated: bool = False


def parse_incoming_name(name: str) -> tuple[str, int] | None:
    """Return (run id, sequence number) of an incoming file name, if it is one of ours."""
    match = _INCOMING_NAME_RE.fullmatch(name)
    return (match["run"], int(match["seq"])) if match else None


class Catalog:
    """One hub's writer of cameras, runs and segments (each filed under its ``hub_id``)."""

    def __init__(self, engine: Engine, storage: Storage, hub_id: str = DEFAULT_HUB) -> None:
        self.engine = engine
        self.storage = storage
        self.hub_id = hub_id
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        # told (on the catalog thread) about every camera seen for the first time:
        # on_new_camera(name, location, kind, approval)
        self.on_new_camera: Callable[[str, str, str, str], None] | None = None

    def ensure_camera(self, name: str, location: str, kind: str) -> int:
        """Return the id of a camera, creating its row the first time it is seen."""
        with self.sessions.begin() as session:
            camera = session.scalar(select(Camera).where(Camera.name == name))
            if camera is None:
                camera = Camera(name=name, location=location, kind=kind, hub_id=self.hub_id)
                session.add(camera)
                logger.info("new camera %s (%s)", name, kind)
                self._announce(name, location, kind, "approved")
            elif location and camera.location != location:
                camera.location = location
            camera.last_seen = utcnow()
            session.flush()
            return camera.id

    def admission(self, name: str, location: str, configured: bool, allow_new: bool,
                  require_approval: bool = False) -> str:
        """Decide on a pushing camera: 'ok', 'pending', 'unknown', 'disabled', 'rejected', or
        'hub:<id>' when another hub of the catalog records it.

        A camera seen for the first time gets its row here: approved if the config file
        names it or no approval is required, else pending (awaiting an admin).
        """
        with self.sessions.begin() as session:
            camera = session.scalar(select(Camera).where(Camera.name == name))
            if camera is None:
                if not (configured or allow_new):
                    return "unknown"
                approved = configured or not require_approval
                camera = Camera(name=name, location=location, kind="push", enabled=True,
                                approval="approved" if approved else "pending",
                                hub_id=self.hub_id)
                session.add(camera)
                session.flush()
                logger.info("new camera %s connected for the first time", name)
                self._announce(name, location, "push", camera.approval)
            if camera.hub_id != self.hub_id:
                return f"hub:{camera.hub_id}"
            if camera.approval == "rejected":
                return "rejected"
            if not camera.enabled:
                return "disabled"
            return "pending" if camera.approval == "pending" else "ok"

    def _announce(self, name: str, location: str, kind: str, approval: str) -> None:
        if self.on_new_camera is not None:
            self.on_new_camera(name, location, kind, approval)

    def start_run(self, info: RunInfo, kind: str, peer: str) -> None:
        """Record the start of an ffmpeg process and its stream-clock anchor."""
        camera_id = self.ensure_camera(info.camera, info.location,
                                       "push" if kind == "backfill" else kind)
        info.backfilled = kind == "backfill"
        with self.sessions.begin() as session:
            session.add(Run(id=info.run_id, camera_id=camera_id, anchor_wall=info.anchor_wall,
                            anchor_pts=info.anchor_pts, peer=peer, location=info.location,
                            kind=kind, hub_id=self.hub_id))

    def end_run(self, run_id: str, reason: str) -> None:
        """Record that an ffmpeg process ended, and why."""
        with self.sessions.begin() as session:
            session.execute(update(Run).where(Run.id == run_id)
                            .values(ended_at=utcnow(), end_reason=reason[:64]))

    def _set_anchor(self, info: RunInfo) -> None:
        with self.sessions.begin() as session:
            session.execute(update(Run).where(Run.id == info.run_id)
                            .values(anchor_pts=info.anchor_pts, anchor_wall=info.anchor_wall))

    def finish_segment(self, info: RunInfo, incoming: Path, start_pts: float,
                       end_pts: float) -> FinishedSegment | None:
        """Make a segment that ffmpeg closed durable and catalog it (recording.md, steps 4-6)."""
        parsed = parse_incoming_name(incoming.name)
        if parsed is None or not incoming.exists():
            logger.error("%s: segment list names %s, which is not on disk", info.camera, incoming.name)
            return None
        first_entry = info.entries == 0
        info.entries += 1
        if first_entry or not info.codec:
            try:
                first_pts = self._learn_from_first_segment(info, incoming)
            except ProbeError:
                if info.anchor_pts is None:  # keep later segments of the run apart in time
                    info.anchor_pts, info.anchor_wall = end_pts, utcnow()
                    self._set_anchor(info)
                raise  # the file stays in .incoming; recovery quarantines it when the run ends
            start_pts = first_pts if first_entry else start_pts
        return self._catalog(info, incoming, parsed[1], start_pts, end_pts, recovered=False)

    def _learn_from_first_segment(self, info: RunInfo, incoming: Path) -> float:
        # ffmpeg's list reports 0.0 as the first segment's start under -copyts, so the
        # first segment of every run is probed for its true first PTS, codec and size.
        result = probe(incoming, head_only=True)
        info.codec, info.width, info.height = result.codec, result.width, result.height
        info.audio_codec = result.audio_codec
        if info.anchor_pts is None:
            # A stream without an epoch: its first frame is taken to be the arrival time.
            info.anchor_pts = result.first_pts
            self._set_anchor(info)
        return result.first_pts

    def _catalog(self, info: RunInfo, source: Path, seq: int, start_pts: float, end_pts: float,
                 recovered: bool, note: str | None = None) -> FinishedSegment:
        start = info.wall(start_pts)
        duration = max(end_pts - start_pts, 0.0)
        end = start + dt.timedelta(seconds=duration)
        size = source.stat().st_size
        last_pts = _last_pts(source, end_pts)
        backfilled = info.backfilled or (recovered and self._is_backfill_run(info.run_id))
        if backfilled and self._covered(info.camera, start, end):
            return self._drop_duplicate(info, source, start, end, size, last_pts)
        target = self.storage.final_path(info.camera, start, info.run_id, seq)
        durable_move(source, target)
        relative = str(self.storage.relative(target))
        values = dict(run_id=info.run_id, seq=seq, location=info.location, start_time=start,
                      end_time=end, duration=duration, size_bytes=size, path=relative,
                      codec=info.codec, width=info.width, height=info.height,
                      recovered=recovered, note=note, backfilled=backfilled,
                      hub_id=self.hub_id)
        # Core, not the ORM's unit of work: this runs for every segment of every camera, and
        # was the larger part of the hub's own CPU per stream (scripts/bench/hub_cpu.py)
        with self.engine.begin() as conn:
            camera_id = conn.execute(_CAMERA_ID, {"name": info.camera}).scalar()
            segment_id = conn.execute(_INSERT_SEGMENT, {"camera_id": camera_id, **values}
                                      ).scalar_one()
            if backfilled:
                _credit_outages(conn, camera_id, start, end)
        logger.info("%s: %ssegment %s, %.2f s, %.1f MB", info.camera,
                    "backfilled " if backfilled else "", relative, duration, size / 1e6)
        return FinishedSegment(segment_id, info.camera, target, start, end, duration, size,
                               run=info, last_pts=last_pts)

    def _is_backfill_run(self, run_id: str) -> bool:
        # start-up recovery rebuilds a RunInfo from the run row: the kind is stored there
        with self.session() as session:
            return session.scalar(select(Run.kind).where(Run.id == run_id)) == "backfill"

    def _covered(self, camera: str, start: dt.datetime, end: dt.datetime) -> bool:
        """Tell whether cataloged footage of a camera already covers [start, end] (tiles it)."""
        with self.session() as session:
            spans = session.execute(
                select(Segment.start_time, Segment.end_time).join(Camera)
                .where(Camera.name == camera, Segment.status == "ok",
                       Segment.start_time < end, Segment.end_time > start)
                .order_by(Segment.start_time)).all()
        reached = start
        for span_start, span_end in spans:
            if span_start > reached + COVER_TOLERANCE:
                return False
            reached = max(reached, span_end)
        return reached + COVER_TOLERANCE >= end

    def _drop_duplicate(self, info: RunInfo, source: Path, start: dt.datetime, end: dt.datetime,
                        size: int, last_pts: float | None) -> FinishedSegment:
        # durable too: a crash must not bring the duplicate back as a recovered segment
        source.unlink()
        fsync_dir(source.parent)
        logger.info("%s: backfilled %s-%s is already cataloged; dropped %s", info.camera,
                    start.isoformat(timespec="milliseconds"), end.isoformat(timespec="milliseconds"),
                    source.name)
        return FinishedSegment(0, info.camera, source, start, end,
                               (end - start).total_seconds(), size, run=info, last_pts=last_pts,
                               deduplicated=True)

    def camera_verdict(self, name: str) -> str:
        """Tell what a backfill may do for a camera, without creating it: 'ok', 'unknown',
        'pending', 'disabled', 'rejected' or 'hub:<id>' (another hub's)."""
        with self.session() as session:
            camera = session.scalar(select(Camera).where(Camera.name == name))
            if camera is None:
                return "unknown"
            if camera.hub_id != self.hub_id:
                return f"hub:{camera.hub_id}"
            if camera.approval == "rejected":
                return "rejected"
            if not camera.enabled:
                return "disabled"
            return "pending" if camera.approval == "pending" else "ok"

    def add_dropped_seconds(self, camera: str, seconds: float) -> bool:
        """Add footage an edge's spool dropped to the camera's open (else latest) outage."""
        with self.sessions.begin() as session:
            row = session.scalar(
                select(Outage).join(Camera).where(Camera.name == camera)
                .order_by(Outage.ended_at.is_not(None), Outage.started_at.desc()).limit(1))
            if row is None:
                return False
            row.dropped_seconds = (row.dropped_seconds or 0.0) + seconds
            return True

    def catalog_recovered(self, info: RunInfo, source: Path, seq: int, start_pts: float,
                          end_pts: float, note: str) -> FinishedSegment:
        """Catalog a segment found on disk at start-up (an interrupted or unlisted one)."""
        return self._catalog(info, source, seq, start_pts, end_pts, recovered=True, note=note)

    def session(self) -> Session:
        """Open a plain session (for reconciliation and tests)."""
        return self.sessions()


def _last_pts(source: Path, listed_end: float) -> float | None:
    try:
        raw = last_video_pts(source)
    except OSError as exc:
        logger.warning("cannot read the last PTS of %s: %s", source.name, exc)
        return None
    return None if raw is None else unwrap_near(raw, listed_end)


_CAMERA_ID = select(Camera.id).where(Camera.name == bindparam("name"))
_INSERT_SEGMENT = insert(Segment).returning(Segment.id)


def _credit_outages(conn: Connection, camera_id: int, start: dt.datetime,
                    end: dt.datetime) -> None:
    """Count a backfilled segment's time inside the camera's outages as recovered footage."""
    now = utcnow()
    rows = conn.execute(select(Outage.id, Outage.started_at, Outage.ended_at,
                               Outage.backfilled_seconds).where(
        Outage.camera_id == camera_id, Outage.started_at < end,
        or_(Outage.ended_at.is_(None), Outage.ended_at > start))).all()
    for outage_id, started_at, ended_at, filled in rows:
        outage_end = ended_at or now
        inside = (min(end, outage_end) - max(start, started_at)).total_seconds()
        length = (outage_end - started_at).total_seconds()
        if inside > 0:
            conn.execute(update(Outage).where(Outage.id == outage_id).values(
                backfilled_seconds=min((filled or 0.0) + inside, length)))
