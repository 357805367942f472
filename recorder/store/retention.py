"""Retention: delete the oldest footage to keep every limit, and the disk above its safety margin.

Rules (issue 4; the order of steps is in docs/design/recording.md, "Delete"):

- **Age.** A camera keeps footage for its ``retention_days`` ([[cameras]]) or else
  ``[retention] days``; a segment goes once it *ended* more than that long ago. ``None`` (or 0 in
  the file) means no age limit. Cameras that are not in the config file (pushed, or added in the
  web app) follow the global settings. Rows whose file is already gone (``missing``) are removed
  by the same rule: they are just rows.
- **Size budgets.** A camera's footage stays within its ``retention_gb`` (only cameras of the
  config file have one); all footage stays within the smaller of ``max_gb`` and ``max_percent``
  of the filesystem's size. Over a budget, the oldest footage (by start time) goes first: per
  camera for a camera's budget, across all cameras for the global one. Whichever of age and
  budget is tighter wins, because each is enforced on its own. Locked footage counts towards a
  budget (a budget bounds disk use), so locked footage above a budget leaves only the newest
  unlocked segments, until the next pass; the report then says ``only_locked_left``.
- **Safety margin.** When free space is below :meth:`Retention.margin_bytes` (the larger of
  ``min_free_gb`` and ``min_free_percent`` of the filesystem, never more than half of it, so a
  1 GB default on a tiny disk cannot erase everything), :meth:`Retention.emergency` deletes the
  oldest footage of all cameras, whatever its age, until free space is back above the margin
  plus a headroom of 1 % of the filesystem. The headroom means a disk that fills steadily gets
  one emergency (and one alert) per 1 % written, not one every disk check. If the space does
  not come back (deleted files still held open), a call stops after deleting twice what it
  needed and leaves the rest to the next check. Recording is never stopped or throttled for
  space: deleting old footage is how room is made.
- **Locks.** A segment that shares any instant with a :class:`~nvrlib.catalog.models.RecordingLock`
  of its camera, or with a lock of every camera (``camera_id`` NULL), is never deleted by the
  age limits or the size budgets. A zero-length lock protects the segment holding that instant.
- **Locks never stop recording** (issue 9). In an emergency, once no unlocked footage is left
  (the report says ``only_locked_left``), locks yield in tiers, oldest footage first: (1) footage
  that only *viewer* locks protect; (2) as a last resort, footage under *admin* locks. A lock
  that yields is not dropped: its start moves past the deleted footage, ``yielded_at`` and
  ``original_start`` say so, and the report lists it (:class:`YieldedLock`) so the hub's alert
  names who made it, why and its span; admin locks get their own, louder alert. The reasoning
  (health.md, "Locks in an emergency"): a full disk loses *new* footage of every camera, which
  nobody chose, while a lock is one person's choice about old footage; Frigate's storage
  maintainer makes the same call for its "retain indefinitely" recordings, which it deletes
  when nothing else frees enough space (``frigate/storage.py``, "Retained recordings must be
  deleted").
- **Several hubs** on one catalog: a hub's retention counts and deletes only its own segments
  (``hub_id``), which are the ones on its disk; locks are shared, so a lock protects a camera's
  footage whichever hub holds it.
- **Motion events** go with their footage: after a batch of a camera's segments is deleted,
  the camera's events (this hub's) that ended by the batch's latest end go too, with their
  snapshots, unless a lock touches them (``recorder.store.motion.expire_events``; motion.md).
  **Face sightings** likewise, with their crops (``recorder.store.faces.expire_sightings``;
  faces.md); one whose final report never came counts as ending 600 s after its start.
- **Units.** GB means 10^9 bytes, as disks are sold and as ``df -H`` counts.
- **Shortfalls.** When a budget or the safety margin removes a segment that started less than
  the camera's configured days ago, the report carries a :class:`Shortfall` with the age of the
  oldest unlocked footage the camera has left. A camera without an age limit has no shortfall.

Deletion protocol (crash-safe, in batches of :data:`BATCH` rows): (1) mark the rows
``deleting`` and commit, in one statement that re-checks the locks, so a lock saved by the web
app a moment earlier still wins (locks that yield are shortened in that same transaction); (2) unlink each file (resolved inside the storage root, a path
that leaves it is never touched) and its cached thumbnail; (3) fsync the touched day folders;
(4) delete the rows and commit; (5) remove day folders that became empty. A crash anywhere in
between leaves rows in ``deleting``, which :func:`finish_deletions` completes at the next start
(called by ``reconcile.reconcile``), so the catalog matches the disk again. A file that cannot be
unlinked (EIO, permissions) keeps its row in ``deleting`` and is retried by every pass.

Everything here runs on the hub's single catalog thread, which also catalogs new segments: each
transaction is short, every call stops after :data:`TIME_BUDGET_SECONDS` of deleting (the report
says ``more``), and the footage total is a running sum per camera (one full sum at first use,
then only rows with a larger id), so :meth:`Retention.disk` stays cheap at a million rows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from sqlalchemy import and_, delete, exists, func, or_, select, true, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from nvrlib.catalog.models import Camera, RecordingLock, Segment, utcnow
from recorder.config import HubConfig
from recorder.store.catalog import Catalog
from recorder.store.faces import expire_sightings
from recorder.store.motion import expire_events
from recorder.store.storage import SEGMENT_SUFFIX, Storage, fsync_dir

logger = logging.getLogger(__name__)

GB = 1_000_000_000
BATCH = 200  # rows per mark/unlink/delete round: short transactions on the shared catalog thread
TIME_BUDGET_SECONDS = 2.0  # of deleting per call; the catalog thread also catalogs new segments
HEADROOM_FRACTION = 0.01  # an emergency frees the margin plus this much of the filesystem
MAX_MARGIN_FRACTION = 0.5  # the safety margin never exceeds half the filesystem

OK, MISSING, DELETING = "ok", "missing", "deleting"
_DAY_FOLDER = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclasses.dataclass(frozen=True)
class DiskUsage:
    """The storage filesystem's size and free space, and the bytes of footage (``ok`` rows)."""

    total_bytes: int
    free_bytes: int
    footage_bytes: int = 0


@dataclasses.dataclass(frozen=True)
class Shortfall:
    """A camera that keeps less than its configured days, and why (``budget`` or ``emergency``)."""

    camera: str
    configured_days: float
    kept_days: float
    cause: str


@dataclasses.dataclass(frozen=True)
class YieldedLock:
    """A lock whose oldest footage an emergency deleted: who made it, why, and its spans."""

    id: int
    camera: str | None  # None: a lock of every camera
    created_by: str
    reason: str
    admin: bool
    start: dt.datetime  # the span it was made with
    end: dt.datetime
    kept_from: dt.datetime  # its start now: footage before this is gone

    def to_details(self) -> dict[str, object]:
        """Return the alert details' JSON object of this lock."""
        return {"id": self.id, "camera": self.camera, "created_by": self.created_by,
                "reason": self.reason, "admin": self.admin, "start": self.start.isoformat(),
                "end": self.end.isoformat(), "kept_from": self.kept_from.isoformat()}


@dataclasses.dataclass
class RetentionReport:
    """What one retention call did, for the hub's alerts, health check and metrics."""

    deleted_segments: int = 0
    deleted_bytes: int = 0
    emergency: bool = False
    only_locked_left: bool = False
    free_before: int = 0
    free_after: int = 0
    total_bytes: int = 0
    shortfalls: list[Shortfall] = dataclasses.field(default_factory=list)
    yielded_locks: list[YieldedLock] = dataclasses.field(default_factory=list)
    missing_rows_removed: int = 0  # rows of files already gone, removed by the age limit
    more: bool = False  # stopped at the time budget with work left: call again soon


@dataclasses.dataclass(frozen=True)
class _Doomed:
    """A segment row chosen for deletion."""

    id: int
    camera_id: int
    path: str
    size_bytes: int
    status: str
    start_time: dt.datetime
    end_time: dt.datetime


_COLUMNS = (Segment.id, Segment.camera_id, Segment.path, Segment.size_bytes, Segment.status,
            Segment.start_time, Segment.end_time)


def unlocked(*only: ColumnElement[bool]) -> ColumnElement[bool]:
    """SQL condition: no lock of the segment's camera (or of every camera) touches the segment.

    ``only`` narrows which locks count (``RecordingLock.admin`` keeps the admin locks).
    """
    lock = RecordingLock
    # A segment covers [start, end); a lock [start, end] touches it when they share an instant.
    touches = exists().where(
        or_(lock.camera_id == Segment.camera_id, lock.camera_id.is_(None)),
        lock.start_time < Segment.end_time,
        or_(lock.end_time > Segment.start_time,
            and_(lock.end_time == lock.start_time, lock.start_time >= Segment.start_time)),
        *only)
    return ~touches


def _touches(camera_id: int | None, start: dt.datetime, end: dt.datetime, row: _Doomed) -> bool:
    """The Python twin of the condition in `unlocked`, for one lock and one deleted row."""
    if camera_id not in (None, row.camera_id) or start >= row.end_time:
        return False
    return end > row.start_time or (end == start and start >= row.start_time)


_LOCK_COLUMNS = (RecordingLock.id, RecordingLock.camera_id, RecordingLock.start_time,
                 RecordingLock.end_time, RecordingLock.note, RecordingLock.created_by,
                 RecordingLock.admin, RecordingLock.original_start)

# The emergency's tiers, in order: what may go, and which locks yield (None: none do).
_TIERS: tuple[tuple[Callable[[], ColumnElement[bool]], bool | None], ...] = (
    (unlocked, None),
    (lambda: unlocked(RecordingLock.admin.is_(True)), False),  # only viewer locks touch it
    (true, True),  # the last resort: admin locks yield too
)


class Retention:
    """Applies the retention rules of the module docstring to the catalog and the disk."""

    time_budget = TIME_BUDGET_SECONDS

    def __init__(self, config: HubConfig, catalog: Catalog, storage: Storage, *,
                 clock: Callable[[], dt.datetime] = utcnow,
                 disk_usage: Callable[[], DiskUsage] | None = None) -> None:
        self.config = config
        self.catalog = catalog
        self.storage = storage
        self.clock = clock
        self._disk_usage = disk_usage or self._statvfs
        self._totals: dict[int, int] | None = None  # bytes of 'ok' rows per camera id
        self._seen_id = 0  # every row with an id up to this is in _totals
        self._stuck: set[int] = set()  # rows left in 'deleting' because the unlink failed
        self._short: dict[int, str] = {}  # camera id -> cause, for this call's shortfalls
        self._names: dict[int, str] = {}  # camera id -> name, loaded at the start of each call
        self._unmet: set[int | None] = set()  # budgets (camera id, None: global) locks overfill

    # -- limits ---------------------------------------------------------------------------------

    def days_for(self, camera: str) -> float | None:
        """Return how many days a camera keeps footage (None: no age limit)."""
        configured = self.config.camera(camera)
        if configured is not None and configured.retention_days:
            return configured.retention_days
        return self.config.retention.days or None

    def camera_budget(self, camera: str) -> int | None:
        """Return a camera's own size budget in bytes, if the config file gives it one."""
        configured = self.config.camera(camera)
        if configured is None or not configured.retention_gb:
            return None
        return int(configured.retention_gb * GB)

    def global_budget(self, total: int) -> int | None:
        """Return the budget of all footage: the smaller of max_gb and max_percent of ``total``."""
        limits = []
        if self.config.retention.max_gb:
            limits.append(int(self.config.retention.max_gb * GB))
        if self.config.retention.max_percent:
            limits.append(int(total * self.config.retention.max_percent / 100))
        return min(limits) if limits else None

    def margin_bytes(self, total: int) -> int:
        """Return the free space kept: max(min_free_gb, min_free_percent), at most half the disk."""
        settings = self.config.retention
        margin = max(settings.min_free_gb * GB, total * settings.min_free_percent / 100)
        return int(min(margin, total * MAX_MARGIN_FRACTION))

    def headroom_bytes(self, total: int) -> int:
        """Return what an emergency frees beyond the margin."""
        return int(total * HEADROOM_FRACTION)

    # -- disk and footage -----------------------------------------------------------------------

    def _statvfs(self) -> DiskUsage:
        total, free = self.storage.disk_space()
        return DiskUsage(total, free)

    def disk(self) -> DiskUsage:
        """Return the filesystem's size and free space and the bytes of footage in the catalog."""
        usage = self._disk_usage()
        return DiskUsage(usage.total_bytes, usage.free_bytes, self.footage_bytes())

    def footage_bytes(self, camera_id: int | None = None) -> int:
        """Return the bytes of ``ok`` segments of one camera, or of all of them."""
        totals = self._refresh_totals()
        return totals.get(camera_id, 0) if camera_id is not None else sum(totals.values())

    def recount(self) -> None:
        """Forget the running totals; the next use sums the catalog again."""
        self._totals = None

    def _refresh_totals(self) -> dict[int, int]:
        with self.catalog.session() as session:
            if self._totals is None:
                # once per process: a full sum (0.6 s at a million rows on SQLite). Grouping
                # on "camera_id + 0" keeps SQLite from walking the camera index row by row.
                self._seen_id = session.scalar(select(func.max(Segment.id))) or 0
                camera = Segment.camera_id + 0
                rows = session.execute(
                    select(camera, func.sum(Segment.size_bytes))
                    .where(Segment.hub_id == self.catalog.hub_id, Segment.status == OK,
                           Segment.id <= self._seen_id).group_by(camera))
                self._totals = {camera_id: int(total or 0) for camera_id, total in rows}
            else:
                # new rows only, by primary key range: a millisecond however big the table is
                rows = session.execute(select(Segment.id, Segment.camera_id, Segment.size_bytes,
                                              Segment.status).where(
                    Segment.hub_id == self.catalog.hub_id, Segment.id > self._seen_id))
                for segment_id, camera_id, size, status in rows:
                    if status == OK:
                        self._totals[camera_id] = self._totals.get(camera_id, 0) + size
                    self._seen_id = max(self._seen_id, segment_id)
        return self._totals

    # -- the regular pass -----------------------------------------------------------------------

    def run_pass(self) -> RetentionReport:
        """Apply the age limits, then the camera budgets, then the global budget."""
        now = self.clock()
        deadline = time.monotonic() + self.time_budget
        usage = self.disk()
        report = RetentionReport(free_before=usage.free_bytes, total_bytes=usage.total_bytes)
        self._short = {}
        cameras = self._names = self._camera_names()
        self._retry_stuck(report)
        for camera_id, name in cameras.items():
            days = self.days_for(name)
            if days is not None and not self._expire(camera_id, now - dt.timedelta(days=days),
                                                     report, deadline):
                break
        met = True
        for camera_id, name in cameras.items():
            budget = self.camera_budget(name)
            if budget is not None and not report.more:
                met = self._trim(camera_id, budget, report, deadline, "budget") and met
        budget = self.global_budget(usage.total_bytes)
        if budget is not None and not report.more:
            met = self._trim(None, budget, report, deadline, "budget") and met
        report.only_locked_left = not met
        report.free_after = self._disk_usage().free_bytes
        report.shortfalls = self._shortfalls(cameras, now)
        if report.deleted_segments or report.missing_rows_removed:
            logger.info("retention: deleted %d segment(s), %.1f MB; %d missing row(s) removed%s",
                        report.deleted_segments, report.deleted_bytes / 1e6,
                        report.missing_rows_removed, "; more to do" if report.more else "")
        return report

    def _expire(self, camera_id: int, cutoff: dt.datetime, report: RetentionReport,
                deadline: float) -> bool:
        """Delete a camera's rows that ended before ``cutoff``; False when out of time."""
        query = (select(*_COLUMNS)
                 .where(Segment.hub_id == self.catalog.hub_id, Segment.camera_id == camera_id,
                        Segment.status.in_((OK, MISSING)),
                        Segment.start_time < cutoff, Segment.end_time <= cutoff, unlocked())
                 .order_by(Segment.start_time).limit(BATCH))
        while True:
            if time.monotonic() > deadline:
                report.more = True
                return False
            batch = self._select(query)
            if not batch:
                return True
            self._delete(batch, report, cause=None)

    def _trim(self, camera_id: int | None, budget: int, report: RetentionReport,
              deadline: float, cause: str) -> bool:
        """Delete the oldest footage until it fits ``budget``; False if only locked is left."""
        while True:
            excess = self.footage_bytes(camera_id) - budget
            if excess <= 0:
                self._unmet.discard(camera_id)
                return True
            if time.monotonic() > deadline:
                report.more = True
                return True
            batch = self._oldest(camera_id, excess)
            if not batch:
                if camera_id not in self._unmet:  # once, not every pass
                    where = "all footage" if camera_id is None else self._names.get(camera_id)
                    logger.warning("retention: %s is %.1f MB over its budget and only locked "
                                   "footage is left", where, excess / 1e6)
                    self._unmet.add(camera_id)
                return False
            self._delete(batch, report, cause)

    # -- the safety margin ----------------------------------------------------------------------

    def emergency(self) -> RetentionReport:
        """Delete the oldest footage of all cameras if free space is below the safety margin."""
        usage = self.disk()
        report = RetentionReport(free_before=usage.free_bytes, free_after=usage.free_bytes,
                                 total_bytes=usage.total_bytes)
        margin = self.margin_bytes(usage.total_bytes)
        if usage.free_bytes >= margin:
            return report
        report.emergency = True
        self._short = {}
        self._names = self._camera_names()
        deadline = time.monotonic() + self.time_budget
        target = margin + self.headroom_bytes(usage.total_bytes)
        free = usage.free_bytes
        yielded: dict[int, YieldedLock] = {}
        for condition, locks_yield in _TIERS:
            if locks_yield is not None:
                report.only_locked_left = True  # the unlocked tier ran out before the target
            free = self._free_up(report, target, usage.free_bytes, deadline, condition(),
                                 yielded if locks_yield is not None else None)
            if free >= target or report.more:
                break
        report.free_after = free
        report.yielded_locks = sorted(yielded.values(), key=lambda lock: (lock.admin, lock.id))
        report.shortfalls = self._shortfalls(self._names, self.clock())
        logger.warning("retention: disk nearly full (%.1f MB free, margin %.1f MB): deleted %d "
                       "oldest segment(s), %.1f MB; %.1f MB free now%s", usage.free_bytes / 1e6,
                       margin / 1e6, report.deleted_segments, report.deleted_bytes / 1e6,
                       free / 1e6, "; only locked footage was left" if report.only_locked_left
                       else "")
        for lock in report.yielded_locks:
            logger.warning("retention: %s lock %d (%s, by %s: %r) yielded to the full disk: "
                           "its footage before %s is deleted", "ADMIN" if lock.admin else
                           "viewer", lock.id, lock.camera or "every camera", lock.created_by,
                           lock.reason, lock.kept_from.isoformat())
        return report

    def _free_up(self, report: RetentionReport, target: int, free_before: int, deadline: float,
                 condition: ColumnElement[bool], yielded: dict[int, YieldedLock] | None) -> int:
        """Delete the oldest footage that ``condition`` allows until ``target`` bytes are free.

        Returns the free bytes. ``yielded`` (None: no lock may yield) collects the locks whose
        footage went, each shortened in the catalog in the same call.
        """
        free = self._disk_usage().free_bytes
        while free < target:
            if time.monotonic() > deadline:
                report.more = True
                break
            if report.deleted_bytes > 2 * (target - free_before):
                # deleted enough on paper, but the space did not come back (open files, or
                # something else writing): leave the rest to the next check
                report.more = True
                break
            batch = self._oldest(None, target - free, condition)
            if not batch:
                break
            self._delete(batch, report, "emergency", condition, yielded)
            free = self._disk_usage().free_bytes
        return free

    def _shorten_locks(self, session: Session, doomed: list[_Doomed],
                       yielded: dict[int, YieldedLock]) -> None:
        """Move the start of every lock touching a doomed row past it; note it in ``yielded``.

        Runs in the transaction that marks the rows 'deleting', so a crash cannot leave the
        footage going and its locks unchanged.
        """
        if not doomed:
            return
        now = self.clock()
        candidates = session.execute(select(*_LOCK_COLUMNS).where(
            or_(RecordingLock.camera_id.in_({row.camera_id for row in doomed}),
                RecordingLock.camera_id.is_(None)),
            RecordingLock.start_time < max(row.end_time for row in doomed),
            RecordingLock.end_time >= min(row.start_time for row in doomed))).all()
        for lock in candidates:
            touched = [row.end_time for row in doomed
                       if _touches(lock.camera_id, lock.start_time, lock.end_time, row)]
            if not touched:
                continue
            original = lock.original_start or lock.start_time
            kept_from = min(max(lock.start_time, max(touched)), lock.end_time)
            # a plain UPDATE: one of a lock the web app just removed changes nothing
            session.execute(update(RecordingLock).where(RecordingLock.id == lock.id).values(
                start_time=kept_from, original_start=original, yielded_at=now))
            camera = self._names.get(lock.camera_id) if lock.camera_id is not None else None
            first = yielded.get(lock.id)
            yielded[lock.id] = YieldedLock(lock.id, camera, lock.created_by, lock.note, lock.admin,
                                           first.start if first else original, lock.end_time,
                                           kept_from)

    # -- choosing and deleting ------------------------------------------------------------------

    def _oldest(self, camera_id: int | None, need: int,
                condition: ColumnElement[bool] | None = None) -> list[_Doomed]:
        """Return the oldest unlocked footage (of one camera or all) adding up to ``need`` bytes.

        ``condition`` replaces "unlocked" (an emergency's later tiers).
        """
        query = select(*_COLUMNS).where(Segment.hub_id == self.catalog.hub_id, Segment.status == OK,
                                        unlocked() if condition is None else condition)
        if camera_id is not None:
            query = query.where(Segment.camera_id == camera_id)
        rows = self._select(query.order_by(Segment.start_time, Segment.id).limit(BATCH))
        chosen, total = [], 0
        for row in rows:
            chosen.append(row)
            total += row.size_bytes
            if total >= need:
                break
        return chosen

    def _select(self, query) -> list[_Doomed]:  # type: ignore[no-untyped-def]
        with self.catalog.session() as session:
            return [_Doomed(*row) for row in session.execute(query)]

    def _delete(self, batch: list[_Doomed], report: RetentionReport, cause: str | None,
                condition: ColumnElement[bool] | None = None,
                yielded: dict[int, YieldedLock] | None = None) -> None:
        """Mark, unlink, fsync, then delete the rows of ``batch`` (the module's protocol).

        ``condition`` is what `_mark` re-checks (default: unlocked); with ``yielded``, the
        locks touching the marked rows are shortened in the marking transaction.
        """
        self._refresh_totals()  # rows are only subtracted once they are counted

        def shorten(session: Session, marked: set[int]) -> None:
            if yielded is not None:
                self._shorten_locks(session, [row for row in batch if row.id in marked], yielded)

        marked = _mark(self.catalog, [row.id for row in batch], condition, shorten)
        batch = [row for row in batch if row.id in marked]
        now = self.clock()
        for row in batch:
            if row.status == OK and row.id <= self._seen_id and self._totals is not None:
                self._totals[row.camera_id] = self._totals.get(row.camera_id, 0) - row.size_bytes
            if cause is not None and row.status == OK:
                self._note_shortfall(row, cause, now)
        gone, stuck = remove_marked(self.catalog, self.storage, batch, self._names)
        self._stuck.update(stuck)
        self._forget_reused_ids()
        self._expire_beside([row for row in batch if row.id in gone])
        for row in batch:
            if row.id not in gone:
                continue
            if row.status == OK:
                report.deleted_segments += 1
                report.deleted_bytes += row.size_bytes
            else:
                report.missing_rows_removed += 1

    def _expire_beside(self, gone: list[_Doomed]) -> None:
        """Motion events and face sightings go with their footage: those that ended by the
        deleted rows' end."""
        cutoffs: dict[int, dt.datetime] = {}
        for row in gone:
            cutoffs[row.camera_id] = max(row.end_time, cutoffs.get(row.camera_id, row.end_time))
        _count, days = expire_events(self.catalog, cutoffs)
        _count, face_days = expire_sightings(self.catalog, cutoffs)
        for day in days | face_days:
            _remove_if_empty_day(self.storage, day)

    def _note_shortfall(self, row: _Doomed, cause: str, now: dt.datetime) -> None:
        days = self.days_for(self._names.get(row.camera_id, ""))
        if days is not None and row.start_time > now - dt.timedelta(days=days):
            # an emergency outranks a budget when both cut the same camera short
            if self._short.get(row.camera_id) != "emergency":
                self._short[row.camera_id] = cause

    def _forget_reused_ids(self) -> None:
        # SQLite hands out max(id)+1: after deleting the newest rows an id can come back,
        # so the running total must look again from below the new maximum.
        with self.catalog.session() as session:
            highest = session.scalar(select(func.max(Segment.id))) or 0
        self._seen_id = min(self._seen_id, highest)

    def _retry_stuck(self, report: RetentionReport) -> None:
        if not self._stuck:
            return
        ids, self._stuck = sorted(self._stuck), set()
        with self.catalog.session() as session:
            rows = [_Doomed(*row) for row in session.execute(
                select(*_COLUMNS).where(Segment.id.in_(ids), Segment.status == DELETING))]
        gone, stuck = remove_marked(self.catalog, self.storage, rows, self._names)
        self._stuck.update(stuck)
        report.deleted_segments += len(gone)
        report.deleted_bytes += sum(row.size_bytes for row in rows if row.id in gone)

    def _shortfalls(self, cameras: dict[int, str], now: dt.datetime) -> list[Shortfall]:
        shortfalls = []
        for camera_id, cause in sorted(self._short.items()):
            name = cameras.get(camera_id, "")
            days = self.days_for(name)
            if days is None:
                continue
            with self.catalog.session() as session:
                oldest = session.scalar(select(func.min(Segment.start_time)).where(
                    Segment.hub_id == self.catalog.hub_id, Segment.camera_id == camera_id,
                    Segment.status == OK, unlocked()))
            kept = max((now - oldest).total_seconds() / 86400, 0.0) if oldest else 0.0
            shortfalls.append(Shortfall(name, days, kept, cause))
            logger.info("retention: %s keeps %.2f of its %g days (%s)", name, kept, days, cause)
        self._short = {}
        return shortfalls

    def _camera_names(self) -> dict[int, str]:
        with self.catalog.session() as session:
            return _names(session)


# -- the deletion protocol, shared with start-up recovery ------------------------------------------

def _names(session: Session) -> dict[int, str]:
    """Return every camera's name by id."""
    return {camera_id: name for camera_id, name in session.execute(select(Camera.id, Camera.name))}


def _mark(catalog: Catalog, ids: list[int], condition: ColumnElement[bool] | None = None,
          then: Callable[[Session, set[int]], None] | None = None) -> set[int]:
    """Step 1: mark rows 'deleting' and commit; return the ids marked (locks re-checked).

    ``condition`` (default: unlocked) is re-checked in the same statement, so a lock saved
    a moment earlier still wins; ``then`` runs in the same transaction with the ids marked.
    """
    if not ids:
        return set()
    with catalog.sessions.begin() as session:
        session.execute(update(Segment)
                        .where(Segment.id.in_(ids), Segment.status.in_((OK, MISSING)),
                               unlocked() if condition is None else condition)
                        .values(status=DELETING))
        marked = set(session.scalars(select(Segment.id).where(Segment.id.in_(ids),
                                                              Segment.status == DELETING)))
        if then is not None:
            then(session, marked)
        return marked


def _file_of(storage: Storage, relative: str) -> Path | None:
    """Return the file a catalog path names, or None if it is not a segment under the root."""
    try:
        path = storage.resolve_catalog_path(relative)
    except ValueError:
        logger.error("refusing to delete %r: it leaves the storage root (only its row goes)",
                     relative)
        return None
    if path.suffix != SEGMENT_SUFFIX or path.is_dir():
        logger.error("refusing to delete %r: it is not a segment file (only its row goes)",
                     relative)
        return None
    return path


def remove_marked(catalog: Catalog, storage: Storage, rows: Iterable[_Doomed],
                  names: dict[int, str]) -> tuple[set[int], set[int]]:
    """Steps 2-5 for rows already marked 'deleting'; return (ids removed, ids still stuck)."""
    gone: set[int] = set()
    stuck: set[int] = set()
    folders: set[Path] = set()
    for row in rows:
        path = _file_of(storage, row.path)
        if path is not None:
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                logger.error("cannot delete %s: %s (retried later)", row.path, exc)
                stuck.add(row.id)
                continue
            folders.add(path.parent)
        _drop_thumbnail(storage, names.get(row.camera_id, ""), row.id)
        gone.add(row.id)
    for folder in folders:
        if folder.is_dir():
            fsync_dir(folder)  # the unlinks are durable before their rows go
    if gone:
        with catalog.sessions.begin() as session:
            session.execute(delete(Segment).where(Segment.id.in_(sorted(gone)),
                                                  Segment.status == DELETING))
    for folder in folders:
        _remove_if_empty_day(storage, folder)
    return gone, stuck


def _drop_thumbnail(storage: Storage, camera: str, segment_id: int) -> None:
    try:
        storage.thumbnail_path(camera, segment_id).unlink(missing_ok=True)
    except OSError as exc:  # a cache: a stale thumbnail is harmless, never worth stopping for
        logger.warning("cannot delete the thumbnail of segment %d: %s", segment_id, exc)


def _remove_if_empty_day(storage: Storage, folder: Path) -> None:
    """Remove a <camera>/<YYYY-MM-DD> folder that holds nothing any more."""
    try:
        relative = folder.relative_to(storage.root)
    except ValueError:
        return
    if len(relative.parts) != 2 or not _DAY_FOLDER.fullmatch(relative.parts[1]):
        return
    try:
        os.rmdir(folder)
    except OSError:
        return  # not empty (or already gone): nothing to do
    fsync_dir(folder.parent)


def finish_deletions(catalog: Catalog, storage: Storage) -> int:
    """Complete the deletions a crash interrupted (unlink, delete the row); return how many."""
    with catalog.session() as session:
        names = _names(session)
    finished, after = 0, 0
    while True:
        with catalog.session() as session:
            rows = [_Doomed(*row) for row in session.execute(
                select(*_COLUMNS).where(Segment.hub_id == catalog.hub_id,
                                        Segment.status == DELETING, Segment.id > after)
                .order_by(Segment.id).limit(BATCH))]
        if not rows:
            break
        gone, _stuck = remove_marked(catalog, storage, rows, names)
        finished += len(gone)
        after = rows[-1].id
    if finished:
        logger.warning("finished %d deletion(s) a stop interrupted", finished)
    return finished
