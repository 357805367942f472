"""Motion events in the catalog and their snapshots on disk (docs/design/motion.md).

Every function runs on the hub's single catalog thread. A snapshot lives beside its camera's
footage, ``<storage>/<camera>/<YYYY-MM-DD>/motion/<event_key>.jpg`` (the UTC day the event
started), and is fsynced before its row names it; retention deletes both with the footage.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy import and_, delete, exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute

from nvrlib.catalog.models import (
    MAX_EVENT_SECONDS, Camera, FaceSighting, MotionEvent, RecordingLock,
)
from nvrlib.durable import write_file_durably
from recorder.store.catalog import Catalog
from recorder.store.storage import Storage, fsync_dir, make_dirs_durable

logger = logging.getLogger(__name__)

MOTION_FOLDER = "motion"
SNAPSHOT_SUFFIX = ".jpg"
BATCH = 500  # events deleted per transaction


@dataclasses.dataclass(frozen=True)
class CameraMotion:
    """A camera's motion settings as the catalog holds them (set in the web app)."""

    camera_id: int
    hub_id: str
    enabled: bool
    sensitivity: int
    mask: str  # JSON text
    updated_at: dt.datetime | None
    camera_enabled: bool = True
    approval: str = "approved"  # approved | pending | rejected


@dataclasses.dataclass(frozen=True)
class EventFields:
    """What one report says of an event (recorder.ingest.events.MotionReport, plain)."""

    camera: str
    event_key: str
    start: dt.datetime
    end: dt.datetime | None
    score: float
    box: tuple[float, float, float, float]
    snapshot: bytes | None = dataclasses.field(default=None, repr=False)
    source: str = "edge"  # edge | hub (the hub's keyframe motion)


def camera_motion(catalog: Catalog, camera: str) -> CameraMotion | None:
    """Return a camera's motion settings and hub, or None if the catalog has no such camera."""
    with catalog.session() as session:
        row = session.execute(select(
            Camera.id, Camera.hub_id, Camera.motion_enabled, Camera.motion_sensitivity,
            Camera.motion_mask, Camera.motion_updated_at, Camera.enabled, Camera.approval)
            .where(Camera.name == camera)).first()
    return None if row is None else CameraMotion(*row)


def snapshot_path(storage: Storage, camera: str, start: dt.datetime, event_key: str,
                  folder: str = MOTION_FOLDER) -> Path:
    """Where an event's picture lives: <camera>/<UTC day of its start>/<folder>/<key>.jpg."""
    day = f"{start.astimezone(dt.timezone.utc):%Y-%m-%d}"
    return storage.camera_dir(camera) / day / folder / f"{event_key}{SNAPSHOT_SUFFIX}"


def write_snapshot(target: Path, data: bytes) -> None:
    """Write a JPEG durably: a temporary file, fsync, rename, fsync the folder."""
    make_dirs_durable(target.parent)
    write_file_durably(target, data)


def store_event(catalog: Catalog, event: EventFields, camera_id: int) -> bool:
    """Insert or update an event by its key, snapshot first; False if the key is another camera's.

    A report of the end updates the one of the start; a report sent twice (an edge's spool)
    changes nothing; the peak (score, box) is the highest score reported.
    """
    relative = None
    if event.snapshot is not None:
        target = snapshot_path(catalog.storage, event.camera, event.start, event.event_key)
        write_snapshot(target, event.snapshot)
        relative = str(catalog.storage.relative(target))
    try:
        with catalog.sessions.begin() as session:
            row = session.scalar(select(MotionEvent).where(MotionEvent.event_key == event.event_key))
            if row is None:
                row = MotionEvent(camera_id=camera_id, event_key=event.event_key, source=event.source,
                                  hub_id=catalog.hub_id, start_time=event.start, score=-1.0)
                session.add(row)
            elif row.camera_id != camera_id:
                return False
            _merge(row, event, relative)
    except IntegrityError:  # another hub of the catalog stored that key a moment ago
        return False
    return True


def _merge(row: MotionEvent, event: EventFields, snapshot: str | None) -> None:
    row.start_time = min(row.start_time, event.start)
    if event.end is not None:
        row.end_time = max(row.end_time or event.end, event.end)
    if event.score >= row.score:
        row.score = event.score
        row.box_x, row.box_y, row.box_w, row.box_h = event.box
    if snapshot is not None:
        row.snapshot_path = snapshot


@dataclasses.dataclass(frozen=True)
class PictureRows:
    """A table of rows that each name a JPEG beside the footage (motion events, face sightings)."""

    model: type[MotionEvent] | type[FaceSighting]
    path: InstrumentedAttribute[str | None]  # the picture, relative to the storage root
    folder: str  # the pictures' folder in a day folder (``motion``, ``faces``)
    noun: str  # for the log
    # a row without an end counts as ending this long after its start (None: such rows stay)
    open_span: dt.timedelta | None = None


MOTION_ROWS = PictureRows(MotionEvent, MotionEvent.snapshot_path, MOTION_FOLDER, "motion event",
                          open_span=dt.timedelta(seconds=MAX_EVENT_SECONDS))


def expire_events(catalog: Catalog, cutoffs: Mapping[int, dt.datetime]) -> tuple[int, set[Path]]:
    """Delete this hub's events of each camera that ended by its cutoff (its deleted footage's
    end), unless a lock touches them; snapshots first. Return (rows deleted, day folders touched).
    """
    return expire_with_footage(catalog, cutoffs, MOTION_ROWS)


def expire_with_footage(catalog: Catalog, cutoffs: Mapping[int, dt.datetime],
                        table: PictureRows) -> tuple[int, set[Path]]:
    """Delete ``table``'s rows of this hub that ended by their camera's cutoff, unless a lock
    touches them; pictures first. Return (rows deleted, day folders touched)."""
    deleted, days = 0, set()
    for camera_id, cutoff in cutoffs.items():
        while True:
            with catalog.session() as session:
                rows = session.execute(_expired(table, catalog.hub_id, camera_id, cutoff)).all()
            if not rows:
                break
            days |= unlink_snapshots(catalog.storage, [path for _id, path in rows if path],
                                     table.folder)
            with catalog.sessions.begin() as session:
                session.execute(delete(table.model).where(
                    table.model.id.in_([row_id for row_id, _path in rows])))
            deleted += len(rows)
    if deleted:
        logger.info("retention: deleted %d %s(s) with their footage", deleted, table.noun)
    return deleted, days


def _expired(table: PictureRows, hub_id: str, camera_id: int,
             cutoff: dt.datetime):  # type: ignore[no-untyped-def]
    model, lock = table.model, RecordingLock
    ended = and_(model.end_time.is_not(None), model.end_time <= cutoff)
    end = model.end_time
    if table.open_span is not None:  # an edge that died never sent the end: not kept forever
        ended = or_(ended, and_(model.end_time.is_(None),
                                model.start_time <= cutoff - table.open_span))
        end = func.coalesce(model.end_time, model.start_time)
    locked = exists().where(
        or_(lock.camera_id == camera_id, lock.camera_id.is_(None)),
        lock.start_time <= end, lock.end_time >= model.start_time)
    return (select(model.id, table.path)
            .where(model.camera_id == camera_id, model.hub_id == hub_id,
                   model.start_time <= cutoff, ended, ~locked)
            .order_by(model.start_time).limit(BATCH))


def unlink_snapshots(storage: Storage, relatives: list[str], folder: str) -> set[Path]:
    """Unlink pictures of ``folder`` (only ones inside the root); fsync and prune their folders.

    Return the day folders a pruned picture folder was in."""
    folders = set()
    for relative in relatives:
        try:
            path = storage.resolve_catalog_path(relative)
        except ValueError:
            logger.error("refusing to delete %r: it leaves the storage root", relative)
            continue
        if path.suffix != SNAPSHOT_SUFFIX or path.parent.name != folder:
            logger.error("refusing to delete %r: it is not a picture of a %s folder", relative,
                         folder)
            continue
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:  # its row goes anyway: a stray JPEG is harmless
            logger.warning("cannot delete the picture %s: %s", relative, exc)
        folders.add(path.parent)
    days = set()
    for parent in folders:
        if not parent.is_dir():
            continue
        fsync_dir(parent)
        try:
            parent.rmdir()  # the last picture of that day went
        except OSError:
            continue
        fsync_dir(parent.parent)
        days.add(parent.parent)
    return days
