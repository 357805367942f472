"""Recording locks (table ``locks``): create, list and remove them, and tell what they protect.

A lock keeps the hub's retention away from every segment of its camera (of every camera when
``camera_id`` is NULL) that overlaps ``[start_time, end_time)``. Overlap, not containment, is
what retention honours, so it is also what the indicators on the recordings pages show.
Any logged-in user may lock one camera, giving a reason; locks of every camera, and viewer locks
beyond the caps of `limits` (count and total hours per user), need an admin. A lock is removed
by an admin or by the user who made it. A lock remembers whether an admin made it: in a
full-disk emergency viewer locks yield first (docs/design/health.md, "Locks in an emergency").
The pages and the JSON API both go through these functions, so they apply the same rules.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, or_, select

from nvrlib.catalog.models import Camera, RecordingLock, Segment

from ..catalog_queries import Interval, SegmentRow, iso_utc, merge_intervals
from ..extensions import db
from ..security import now
from ..service_errors import ServiceError
from . import limits

logger = logging.getLogger(__name__)

MAX_SPAN = dt.timedelta(days=366)  # a year of one camera is already a lot of disk to pin
MAX_NOTE_LENGTH = 200  # locks.note
MAX_USER_LENGTH = 64  # locks.created_by


class LockError(ServiceError):
    """A lock request refused; ``status`` is the HTTP status that says why."""


class InvalidLock(LockError):
    """A bad range or note (400); the message starts with the field's name."""


class UnknownCamera(LockError):
    """No camera of that name (404)."""

    status = 404


class UnknownLock(LockError):
    """No lock of that id (404)."""

    status = 404


class UnknownRecording(LockError):
    """No recording (segment) of that id (404)."""

    status = 404


class NotAllowed(LockError):
    """Something only an admin (or the lock's maker) may do (403)."""

    status = 403


class OverCap(NotAllowed):
    """A viewer's lock beyond the caps on count or hours (403); the message names which."""


@dataclasses.dataclass(frozen=True)
class LockView:
    """One lock with its camera's name (None: every camera), for the pages and the API."""

    id: int
    camera: str | None
    start: dt.datetime
    end: dt.datetime
    note: str
    created_by: str
    created_at: dt.datetime
    admin: bool = False  # made by an admin: yields last in a full-disk emergency
    yielded_at: dt.datetime | None = None  # when a full disk last took its oldest footage
    original_start: dt.datetime | None = None  # its start before it yielded

    @property
    def seconds(self) -> float:
        """Return the length of the locked range in seconds."""
        return (self.end - self.start).total_seconds()

    def removable_by(self, username: str, is_admin: bool) -> bool:
        """Tell whether this user may remove the lock (an admin, or whoever made it)."""
        return is_admin or (bool(username) and username == self.created_by)

    def to_json(self) -> dict[str, Any]:
        """Return the API's JSON object of this lock."""
        return {"id": self.id, "camera": self.camera, "start": iso_utc(self.start),
                "end": iso_utc(self.end), "note": self.note, "created_by": self.created_by,
                "created_at": iso_utc(self.created_at), "admin": self.admin,
                "yielded_at": iso_utc(self.yielded_at) if self.yielded_at else None,
                "original_start": (iso_utc(self.original_start) if self.original_start
                                   else None)}


# -- checks ------------------------------------------------------------------------------------

def check_range(start: dt.datetime, end: dt.datetime) -> None:
    """Refuse an empty or backwards range, or one longer than `MAX_SPAN`."""
    if end <= start:
        raise InvalidLock("end: must be after start")
    if end - start > MAX_SPAN:
        raise InvalidLock(f"end: a lock covers at most {MAX_SPAN.days} days")


def check_note(note: str) -> str:
    """Return the note (the lock's reason) stripped; refuse an empty, long or multi-line one."""
    note = note.strip()
    if not note:
        raise InvalidLock("note: say why this footage must be kept (a short reason)")
    if len(note) > MAX_NOTE_LENGTH:
        raise InvalidLock(f"note: at most {MAX_NOTE_LENGTH} characters")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in note):
        raise InvalidLock("note: one line of text, without control characters")
    return note


def camera_id(name: str) -> int:
    """Return the id of the camera called ``name``, or raise UnknownCamera."""
    found = db.session.scalar(select(Camera.id).where(Camera.name == name))
    if found is None:
        raise UnknownCamera(f"camera: no camera named {name!r}")
    return found


# -- changes -----------------------------------------------------------------------------------

def create_lock(camera: str | None, start: dt.datetime, end: dt.datetime, note: str,
                user: str, is_admin: bool = False) -> LockView:
    """Lock ``[start, end)`` of one camera (None: every camera, admins only) for ``user``."""
    check_range(start, end)
    note = check_note(note)
    if camera is None and not is_admin:
        raise NotAllowed("camera: a lock on every camera needs an admin; choose one camera")
    return _insert(camera_id(camera) if camera is not None else None, camera, start, end, note,
                   user, is_admin)


def lock_recording(segment_id: int, note: str, user: str, is_admin: bool = False) -> LockView:
    """Lock exactly one recording's ``[start, end)`` on its camera (viewers within the caps)."""
    note = check_note(note)
    row = db.session.execute(select(Segment.camera_id, Camera.name, Segment.start_time,
                                    Segment.end_time)
                             .join(Camera, Camera.id == Segment.camera_id)
                             .where(Segment.id == segment_id)).first()
    if row is None:
        raise UnknownRecording(f"no recording with id {segment_id}")
    found_id, name, start, end = row
    if end <= start:  # a recovered zero-length segment: nothing to protect
        raise InvalidLock(f"recording {segment_id} has no length to protect")
    return _insert(found_id, name, start, end, note, user, is_admin)


def _insert(found_id: int | None, camera: str | None, start: dt.datetime, end: dt.datetime,
            note: str, user: str, is_admin: bool) -> LockView:
    lock = RecordingLock(camera_id=found_id, start_time=start, end_time=end, note=note,
                         created_by=user[:MAX_USER_LENGTH], created_at=now(), admin=is_admin)
    db.session.add(lock)
    if not is_admin:
        # counted after the insert, in its transaction: on SQLite the insert holds the write
        # lock until commit, so a parallel request's insert waits and its count sees this row
        # (PostgreSQL's read committed does not serialize them: one extra lock per racing
        # request can slip through there, which a cap meant against hoarding can bear)
        db.session.flush()
        problem = limits.over_cap(limits.usage_of(lock.created_by), limits.current_limits())
        if problem is not None:
            db.session.rollback()
            raise OverCap(problem)
    db.session.commit()
    logger.info("%s locked %s from %s to %s (lock %d)", user, camera or "every camera",
                iso_utc(start), iso_utc(end), lock.id)
    return _view(lock, camera)


def remove_lock(lock_id: int, username: str, is_admin: bool) -> LockView:
    """Remove a lock (admins, or the user who made it); return what it was."""
    lock = db.session.get(RecordingLock, lock_id)
    if lock is None:
        raise UnknownLock(f"no lock with id {lock_id}")
    view = _view(lock, lock.camera.name if lock.camera is not None else None)
    if not view.removable_by(username, is_admin):
        raise NotAllowed(f"lock {lock_id} was made by {view.created_by or 'someone else'}; "
                         f"only they or an admin may remove it")
    db.session.delete(lock)
    db.session.commit()
    logger.info("%s removed lock %d (%s from %s to %s)", username, lock_id,
                view.camera or "every camera", iso_utc(view.start), iso_utc(view.end))
    return view


# -- reading -----------------------------------------------------------------------------------

def _view(lock: RecordingLock, camera: str | None) -> LockView:
    return LockView(lock.id, camera, lock.start_time, lock.end_time, lock.note or "",
                    lock.created_by or "", lock.created_at, bool(lock.admin), lock.yielded_at,
                    lock.original_start)


def _views_query() -> Select:
    return (select(RecordingLock, Camera.name)
            .outerjoin(Camera, Camera.id == RecordingLock.camera_id))


def get_lock(lock_id: int) -> LockView:
    """Return one lock, or raise UnknownLock."""
    row = db.session.execute(_views_query().where(RecordingLock.id == lock_id)).first()
    if row is None:
        raise UnknownLock(f"no lock with id {lock_id}")
    return _view(*row)


def list_locks(camera: str | None = None, start: dt.datetime | None = None,
               end: dt.datetime | None = None, limit: int = 50,
               offset: int = 0) -> tuple[list[LockView], bool]:
    """Return one page of locks, latest range first, and whether another page follows.

    ``camera`` keeps the locks that protect that camera (its own and every-camera locks);
    ``start``/``end`` keep those overlapping the range.
    """
    query = _views_query()
    if camera is not None:
        query = query.where(or_(RecordingLock.camera_id == camera_id(camera),
                                RecordingLock.camera_id.is_(None)))
    if end is not None:
        query = query.where(RecordingLock.start_time < end)
    if start is not None:
        query = query.where(RecordingLock.end_time > start)
    query = query.order_by(RecordingLock.start_time.desc(), RecordingLock.id.desc())
    rows = db.session.execute(query.limit(limit + 1).offset(offset)).all()
    return [_view(*row) for row in rows[:limit]], len(rows) > limit


def _overlapping(camera_ids: Sequence[int], start: dt.datetime,
                 end: dt.datetime) -> list[tuple[int | None, dt.datetime, dt.datetime]]:
    """The (camera id, start, end) of the locks on these cameras or all overlapping a range."""
    query = (select(RecordingLock.camera_id, RecordingLock.start_time, RecordingLock.end_time)
             .where(RecordingLock.start_time < end, RecordingLock.end_time > start,
                    or_(RecordingLock.camera_id.is_(None),
                        RecordingLock.camera_id.in_(list(camera_ids)))))
    return [tuple(row) for row in db.session.execute(query)]  # type: ignore[misc]


def protected_ids(rows: Sequence[SegmentRow]) -> set[int]:
    """Return the ids of the recordings among ``rows`` that a lock protects."""
    if not rows:
        return set()
    names = {row.camera for row in rows}
    ids: dict[str, int] = {name: found for name, found in db.session.execute(
        select(Camera.name, Camera.id).where(Camera.name.in_(names)))}
    locks = _overlapping(list(ids.values()), min(row.start for row in rows),
                         max(row.end for row in rows))
    return {row.id for row in rows
            if any(lock_camera in (None, ids.get(row.camera)) and start < row.end
                   and end > row.start for lock_camera, start, end in locks)}


def locked_intervals(camera: str, start: dt.datetime, end: dt.datetime) -> list[Interval]:
    """Return the stretches of ``[start, end)`` that locks protect on a camera, merged."""
    found = db.session.scalar(select(Camera.id).where(Camera.name == camera))
    if found is None:
        return []
    spans = sorted((max(lock_start, start), min(lock_end, end))
                   for _, lock_start, lock_end in _overlapping([found], start, end))
    return merge_intervals(spans)
