"""The hub's health checks, run on APScheduler: streams, disk, retention, catalog, heartbeat.

Every job is a coroutine on the hub's event loop that hands disk and database work to the
catalog thread, so a check never races the catalog writer and never blocks the loop. See
docs/design/health.md.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import select

from nvrlib.catalog.models import HubStatus, Segment, utcnow
from recorder.health.alerts import AlertCenter, AlertEvent, EmailState
from recorder.health.face_alerts import FaceAlerts
from recorder.health.motion_alerts import MotionAlerts
from recorder.health.row_alerts import RowAlerts
from recorder.supervise.marks import wait_for
from recorder.health.outages import OutageInfo
from recorder.store.catalog import Catalog
from recorder.store.faces import sweep_erased
from recorder.store.retention import Retention, RetentionReport
from recorder.store.storage import Storage
from recorder.supervise.keyframe_motion import SegmentMotion
from recorder.supervise.segmenter import Segmenter
from recorder.supervise.states import State

logger = logging.getLogger(__name__)

STATUS_INTERVAL = 5.0  # seconds between heartbeats in hub_status
FACE_CROPS_SECONDS = 10.0  # an erased sighting's crop is deleted within this
RETENTION_SHORT_REPEAT = dt.timedelta(hours=24)  # one "can't keep N days" alert per camera a day
RETENTION_CATCH_UP_CALLS = 30  # after days were lowered on a big catalog: up to ~1 min of work
DISK_LOW_HYSTERESIS = 2.0  # percent above the threshold before a new disk-low alert can be sent
CATALOG_CHECK_RECENT = dt.timedelta(days=2)  # the periodic check looks at recent footage only
UNLISTED_GRACE_SECONDS = 120  # a final file younger than this may still be being cataloged


@dataclasses.dataclass
class CheckResult:
    """The outcome of one health check, as /api/v1/health and /metrics show it."""

    ok: bool
    detail: str
    at: dt.datetime
    # the streams check names the cameras that are not recording (health.md, "Not recording")
    not_recording: list[str] | None = None

    def as_json(self) -> dict[str, Any]:
        """The check as the hub_status.checks JSON holds it."""
        data: dict[str, Any] = {"ok": self.ok, "detail": self.detail, "at": self.at.isoformat()}
        if self.not_recording is not None:
            data["not_recording"] = self.not_recording
        return data


class HubView(Protocol):
    """The narrow part of the hub that the health checks read and act on (no import of hub)."""

    alerts: AlertCenter
    catalog: Catalog
    executor: Executor
    open_outages: dict[str, OutageInfo]
    retention: Retention
    segment_motion: SegmentMotion
    storage: Storage

    def raise_alert(self, kind: str, camera: str | None, details: dict[str, object]) -> None:
        """Hand an alert to the alert center."""

    def segmenters(self) -> dict[str, Segmenter]:
        """Every live segmenter by camera name."""


class HealthMonitor:
    """Schedules and runs the hub's health checks and acts on what they find."""

    def __init__(self, hub: HubView, clock: Callable[[], float] = time.monotonic) -> None:
        self.hub = hub
        self.config = hub.config
        self.clock = clock
        self.scheduler = AsyncIOScheduler(timezone=dt.timezone.utc)
        self.checks: dict[str, CheckResult] = {}
        self.started_at = utcnow()
        self.started_mono = clock()
        self.disk_low_alerted = False
        self.retention_alerted: dict[str, dt.datetime] = {}
        self.deleted_segments = 0
        self.deleted_bytes = 0
        self.disk_total = self.disk_free = self.footage = 0
        self.stalled: set[str] = set()
        self.missed_after_restart: set[str] = set()
        self.motion_alerts: MotionAlerts | None = None  # made at start: it needs the catalog
        self.face_alerts: FaceAlerts | None = None
        self._news = {"motion": asyncio.Event(), "face": asyncio.Event()}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.row_alert_tasks: list[asyncio.Task[None]] = []

    # -- life cycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Schedule every check (the first runs come at once)."""
        now = dt.datetime.now(dt.timezone.utc)
        self.motion_alerts = MotionAlerts(self.hub.catalog, self.config, self.hub.raise_alert)
        self.face_alerts = FaceAlerts(self.hub.catalog, self.config, self.hub.raise_alert)
        jobs: list[tuple[Callable[[], Any], float, str]] = [
            (self.check_streams, self.config.health_interval, "streams"),
            (self.check_disk, self.config.disk_check_interval, "disk"),
            (self.run_retention, self.config.retention.interval, "retention"),
            (self.check_catalog, self.config.catalog_check_interval, "catalog"),
            (self.publish, STATUS_INTERVAL, "heartbeat"),
            (self.sweep_face_crops, FACE_CROPS_SECONDS, "face_crops"),
        ]
        for func, seconds, name in jobs:
            # max_instances=1 + coalesce: a slow check is never stacked up behind itself
            self.scheduler.add_job(self._guarded(func, name), "interval", seconds=seconds,
                                   id=name, name=name, next_run_time=now, max_instances=1,
                                   coalesce=True, misfire_grace_time=max(int(seconds), 1))
        self.scheduler.start()
        # the row alerts run when the hub stores a row (news), not on a short poll
        self._loop = asyncio.get_running_loop()
        self.row_alert_tasks = [
            asyncio.create_task(self._row_alerts_loop(self.motion_alerts, self.check_motion_alerts,
                                                      self._news["motion"], "motion_alerts")),
            asyncio.create_task(self._row_alerts_loop(self.face_alerts, self.check_face_alerts,
                                                      self._news["face"], "face_alerts"))]

    def news(self, kind: str) -> None:
        """Say that the hub stored a ``kind`` row ("motion", "face"): its alert job runs now.
        Safe from any thread (the hub's own motion is stored on the catalog thread)."""
        event = self._news.get(kind)
        if event is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(event.set)

    async def _row_alerts_loop(self, alerts: RowAlerts | None, check: Callable[[], Any],
                               news: asyncio.Event, name: str) -> None:
        job = self._guarded(check, name)
        while alerts is not None:
            await job()
            await wait_for(news, alerts.next_poll_seconds())

    def halt(self) -> None:
        """Stop scheduling checks and running alert jobs (the hub is stopping)."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        for task in self.row_alert_tasks:
            task.cancel()

    async def stop(self) -> None:
        """Stop scheduling checks and write the hub's stop time."""
        self.halt()
        await asyncio.gather(*self.row_alert_tasks, return_exceptions=True)
        await self._in_catalog(self._write_status, True)

    def _guarded(self, func: Callable[[], Any], name: str) -> Callable[[], Any]:
        async def job() -> None:
            try:
                await func()
            except asyncio.CancelledError:
                # the hub is stopping: APScheduler would log the cancellation as a traceback
                logger.debug("health check %s cancelled", name)
            except OSError as exc:  # out of descriptors, a disk error: one line, not a traceback
                logger.warning("health check %s failed: %s", name, exc)
                self._set(name, False, f"the check itself failed: {exc}")
            except Exception as exc:  # a failing check must never take recording down
                logger.exception("health check %s failed", name)
                self._set(name, False, f"the check itself failed: {exc}")
        job.__name__ = f"health_{name}"
        return job

    # -- checks -------------------------------------------------------------------------------

    async def check_streams(self) -> None:
        """Restart streams that write no segment while their source sends, and report them."""
        problems, not_recording = [], []
        for name, segmenter in list(self.hub.segmenters().items()):
            limit = self.config.stall_seconds_for(name)
            idle = self._seconds_without_segment(segmenter, limit,
                                                 count_from_spawn=name not in self.stalled)
            if idle is None or idle < limit:
                self.stalled.discard(name)
                if segmenter.state is State.FAILED:
                    problems.append(f"{name} failed")
                continue
            not_recording.append(name)
            problems.append(f"{name} is not recording (no segment for {idle:.0f} s, "
                            f"{segmenter.state.value})")
            if name in self.stalled:
                continue  # already restarted once for this episode; the state machine backs off
            self.stalled.add(name)
            logger.warning("%s: not recording: no new segment for %.0f s (limit %.0f s) while "
                           "its source sends: restarting ffmpeg (%s)", name, idle, limit,
                           segmenter.state.value)
            await segmenter.restart()
            self.hub.raise_alert("stalled", name, {
                "seconds_without_segment": round(idle, 1), "state": segmenter.state.value,
                "restarts": segmenter.machine.restarts + 1})
        await self._remind_missing_after_restart()
        self._set("streams", not problems, ", ".join(problems) or "every stream is recording",
                  not_recording=not_recording)

    def _seconds_without_segment(self, segmenter: Any, limit: float,
                                 count_from_spawn: bool = True) -> float | None:
        """Seconds a stream that should be recording has written nothing (None: not expected).

        A pushed stream whose edge sends bytes should be recorded whatever state its ffmpeg is
        in (a FAILED or stuck camera included), counted from the connection, its last segment
        or the start of its current ffmpeg (STARTING or RUNNING), whichever came last; a silent
        edge is the ingest stall timeout's to drop. Counting from the current ffmpeg's start
        gives one spawned late a whole window: when hundreds of edges reconnect at once to a
        small hub, spawning their ffmpegs takes tens of seconds, and restarting the slow ones
        only made the storm worse (scripts/bench/hub_cpu.py at 256 streams). Once a stream was
        restarted for this (``count_from_spawn`` False), the restart does not reset the count:
        it stays "not recording" instead of being restarted again every window. A pulled stream's
        ffmpeg is its connection: it is expected to record while RUNNING, counted from that
        run's start.
        """
        last_segment = segmenter.stats.last_segment_at or 0.0
        if segmenter.kind == "push":
            last_data = segmenter.stats.last_data_at
            if last_data is None or self.clock() - last_data >= limit:
                return None
            run_start = 0.0
            if count_from_spawn and segmenter.state in (State.STARTING, State.RUNNING):
                run_start = segmenter.machine.started_at or 0.0
            return self.clock() - max(segmenter.stats.created, last_segment, run_start)
        if segmenter.state is not State.RUNNING or segmenter.machine.started_at is None:
            return None
        return self.clock() - max(segmenter.machine.started_at, last_segment)

    async def _remind_missing_after_restart(self) -> None:
        """Report cameras that recorded before the hub (re)started and have not come back."""
        grace = 2 * self.config.stall_margin + 2 * self.config.segment_seconds
        if self.clock() - self.started_mono < grace:
            return
        streaming = self.hub.segmenters()
        for name, outage in list(self.hub.open_outages.items()):
            if outage.reason != "hub_stopped" or name in streaming or name in self.missed_after_restart:
                continue
            self.missed_after_restart.add(name)
            self.hub.raise_alert("offline", name, {
                "reason": "connection_lost", "peer": "", "since": outage.started_at.isoformat(),
                "last_segment_end": None,
                "detail": f"did not reconnect within {grace:.0f} s after the hub started"})

    async def check_disk(self) -> None:
        """Delete the oldest footage if the disk is nearly full; alert when space is low."""
        report: RetentionReport = await self._in_catalog(self.hub.retention.emergency)
        await self._after_retention(report)
        usage = await self._in_catalog(self.hub.retention.disk)
        self.disk_total, self.disk_free, self.footage = (usage.total_bytes, usage.free_bytes,
                                                         usage.footage_bytes)
        free_percent = 100.0 * usage.free_bytes / usage.total_bytes if usage.total_bytes else 0.0
        threshold = self.config.alerts.disk_low_percent
        low = free_percent < threshold
        if low and not self.disk_low_alerted:
            self.disk_low_alerted = True
            self.hub.raise_alert("disk_low", None, {
                "free_bytes": usage.free_bytes, "total_bytes": usage.total_bytes,
                "free_percent": round(free_percent, 2), "threshold_percent": threshold})
        elif free_percent >= threshold + DISK_LOW_HYSTERESIS:
            self.disk_low_alerted = False
        self._set("disk", not low, f"{usage.free_bytes / 1e9:.2f} GB free ({free_percent:.1f}%), "
                  f"footage {usage.footage_bytes / 1e9:.2f} GB")

    async def run_retention(self) -> None:
        """Run the regular retention pass (days and size budgets) until it has caught up."""
        for _ in range(RETENTION_CATCH_UP_CALLS):
            # each call is time-boxed on the catalog thread; segments queued meanwhile go
            # first, because every call is a new job behind them
            report: RetentionReport = await self._in_catalog(self.hub.retention.run_pass)
            await self._after_retention(report)
            if not report.more:
                break

    async def _after_retention(self, report: RetentionReport) -> None:
        self.deleted_segments += report.deleted_segments
        self.deleted_bytes += report.deleted_bytes
        if report.emergency:  # recorder.store.retention has logged what it deleted
            self.hub.raise_alert("disk_emergency", None, {
                "free_bytes": report.free_after, "total_bytes": report.total_bytes,
                "deleted_segments": report.deleted_segments,
                "deleted_bytes": report.deleted_bytes,
                "only_locked_left": report.only_locked_left})
        for admin in (False, True):  # viewer locks, then the louder alert for admin locks
            yielded = [lock.to_details() for lock in report.yielded_locks if lock.admin is admin]
            if yielded:
                self.hub.raise_alert("admin_locks_yielded" if admin else "locks_yielded", None,
                                     {"admin": admin, "locks": yielded})
        now = utcnow()
        for shortfall in report.shortfalls:
            last = self.retention_alerted.get(shortfall.camera)
            if last is not None and now - last < RETENTION_SHORT_REPEAT:
                continue
            self.retention_alerted[shortfall.camera] = now
            self.hub.raise_alert("retention_short", shortfall.camera, {
                "configured_days": shortfall.configured_days,
                "kept_days": round(shortfall.kept_days, 2), "cause": shortfall.cause})
        if report.emergency or report.shortfalls or report.deleted_segments:
            short = ", ".join(f"{s.camera} keeps {s.kept_days:.1f} of {s.configured_days:g} days"
                              for s in report.shortfalls)
            ok = not report.only_locked_left and not report.shortfalls
            yielded = (f"{len(report.yielded_locks)} lock(s) yielded footage to a full disk"
                       if report.yielded_locks else "only locked footage is left")
            self._set("retention", ok, short or (yielded if report.only_locked_left else
                                                 f"deleted {report.deleted_segments} segments"))
        elif "retention" not in self.checks:
            self._set("retention", True, "within every limit")

    async def check_catalog(self) -> None:
        """Compare recent catalog rows with the files on disk (start-up does the full check)."""
        missing, unlisted = await self._in_catalog(recent_consistency, self.hub.catalog,
                                                   self.hub.storage)
        problems = []
        if missing:
            problems.append(f"{len(missing)} cataloged segment(s) missing on disk, e.g. {missing[0]}")
        if unlisted:
            problems.append(f"{len(unlisted)} file(s) on disk not in the catalog, e.g. {unlisted[0]}")
        for problem in problems:
            logger.warning("catalog check: %s", problem)
        self._set("catalog", not problems, "; ".join(problems) or "catalog matches the disk")

    async def check_motion_alerts(self) -> None:
        """Raise a motion alert for each new motion event that is armed (health.md)."""
        if self.motion_alerts is not None:  # raise_alert only queues: safe from that thread
            await self._in_catalog(self.motion_alerts.run_once)
            self.checks.pop("motion_alerts", None)  # a failure is shown until it works again

    async def check_face_alerts(self) -> None:
        """Raise a face alert for each new sighting that is wanted (faces.md)."""
        if self.face_alerts is not None:
            await self._in_catalog(self.face_alerts.run_once)
            self.checks.pop("face_alerts", None)

    async def sweep_face_crops(self) -> None:
        """Delete the crops of the sightings the web app erased (their person was deleted)."""
        await self._in_catalog(sweep_erased, self.hub.catalog)
        self.checks.pop("face_crops", None)

    # -- heartbeat ----------------------------------------------------------------------------

    async def publish(self) -> None:
        """Write the hub's heartbeat, disk figures, email state and check results."""
        await self._in_catalog(self._write_status, False)

    @staticmethod
    def _email_detail(state: EmailState) -> str:
        if not state.enabled:
            return "email is off (no SendGrid API key): alerts are logged and stored"
        return f"email to {len(state.recipients)} address(es) ({state.recipients_source})"

    def _write_status(self, stopped: bool) -> None:
        state = self.hub.alerts.email_state()
        self._set("alerts", True, self._email_detail(state))
        shares = self.hub.segment_motion.cpu_share()
        if shares:  # what the hub's own motion detection costs, measured (keyframe_motion.py)
            self._set("motion", True, motion_cost_text(shares))
        now = utcnow()
        hub_id = self.hub.catalog.hub_id
        with self.hub.catalog.sessions.begin() as session:
            row = session.scalar(select(HubStatus).where(HubStatus.hub_id == hub_id)) or \
                HubStatus(hub_id=hub_id)
            row.pid, row.started_at = os.getpid(), self.started_at
            row.heartbeat_at, row.stopped_at = now, (now if stopped else None)
            row.disk_total_bytes, row.disk_free_bytes = self.disk_total, self.disk_free
            row.footage_bytes = self.footage
            row.email_enabled, row.recipients_source = state.enabled, state.recipients_source
            row.recipients = ", ".join(state.recipients)
            row.checks = json.dumps({k: v.as_json() for k, v in self.checks.items()})
            row.retention_deleted_segments = self.deleted_segments
            row.retention_deleted_bytes = self.deleted_bytes
            session.add(row)

    # -- helpers ------------------------------------------------------------------------------

    def _set(self, name: str, ok: bool, detail: str,
             not_recording: list[str] | None = None) -> None:
        self.checks[name] = CheckResult(ok, detail[:500], utcnow(), not_recording)

    async def _in_catalog(self, func: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.hub.executor, func, *args)


def motion_cost_text(shares: dict[str, float]) -> str:
    """E.g. "hub motion for 2 cameras: 0.9 % of a core (porch 0.4 %, yard 0.5 %)"."""
    cameras = ", ".join(f"{name} {100 * share:.1f} %" for name, share in shares.items())
    count = len(shares)
    return (f"hub motion for {count} camera{'' if count == 1 else 's'}: "
            f"{100 * sum(shares.values()):.1f} % of a core ({cameras})")


def recent_consistency(catalog: Catalog, storage: Storage,
                       now: dt.datetime | None = None) -> tuple[list[str], list[str]]:
    """Return (cataloged recent segments missing on disk, recent files not in the catalog).

    Only the last CATALOG_CHECK_RECENT of footage is compared, so the check stays cheap on a
    catalog of millions of rows; start-up reconciliation compares everything.
    """
    now = now or utcnow()
    first_day = (now - CATALOG_CHECK_RECENT).date()
    since = dt.datetime.combine(first_day, dt.time(), tzinfo=dt.timezone.utc)
    with catalog.session() as session:
        rows = session.execute(select(Segment.path, Segment.status)
                               .where(Segment.hub_id == catalog.hub_id,
                                      Segment.start_time >= since - dt.timedelta(hours=1))).all()
    known = {path for path, _ in rows}
    missing = [path for path, status in rows
               if status == "ok" and not storage.resolve_catalog_path(path).exists()]
    days = {f"{first_day + dt.timedelta(days=n):%Y-%m-%d}"
            for n in range((now.date() - first_day).days + 1)}
    unlisted = []
    wall = time.time()
    for camera_dir in _camera_dirs(storage):
        for day in days:
            for path in (camera_dir / day).glob("*.ts"):
                relative = str(storage.relative(path))
                if relative not in known and wall - path.stat().st_mtime > UNLISTED_GRACE_SECONDS:
                    unlisted.append(relative)
    return sorted(missing), sorted(unlisted)


def _camera_dirs(storage: Storage) -> list[Any]:
    if not storage.root.is_dir():
        return []
    return [p for p in storage.root.iterdir() if p.is_dir() and not p.name.startswith(".")]
