"""Motion alerts: the hub emails a camera's motion when its alerts are on and armed.

Decoupled from whoever writes motion_events rows (the edge's reports, the hub's own detector):
a job of the HealthMonitor reads, every ~2 s, the rows newer than the last it saw of this hub's
cameras, decides for each whether the camera's motion alerts are on (its ``motion_alerts`` key
in the config file, else its column) and armed (nvrlib/motion_schedule.py: away, or within the
armed hours), and raises one ``motion`` alert per event, with the snapshot's path for the email
to attach and a link that plays the moment. An event still going on alerts at its start; a
row is looked at once, by id, so an event never alerts twice. The alert center debounces them
per camera like any alert (docs/design/health.md, "Motion alerts").
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import func, select

from nvrlib.catalog.models import Camera, MotionEvent, Setting, utcnow
from nvrlib.motion_schedule import (
    PLAY_PREROLL, PREFIX, MotionSchedule, schedule_from_settings,
)
from recorder.config import HubConfig
from recorder.health.mailer import Attachment
from recorder.health.messages import iso_utc
from recorder.store.catalog import Catalog
from recorder.store.storage import Storage

logger = logging.getLogger(__name__)

POLL_SECONDS = 2.0  # how often the HealthMonitor runs the job
BATCH = 200  # rows read per poll at most; the rest come on the next
# An event reported this long after it started (an edge's spool emptying after an outage) is
# history, not news: it is listed on the Events page but not emailed.
MAX_AGE = dt.timedelta(minutes=10)
SNAPSHOT_MAX_BYTES = 5 * 1024 * 1024  # SendGrid takes 30 MB per mail; a snapshot is ~50 kB
ALERT_KIND = "motion"

RaiseAlert = Callable[[str, str | None, dict[str, object]], None]


@dataclass(frozen=True)
class MotionRow:
    """What a motion alert needs of a motion_events row and its camera."""

    id: int
    camera: str
    camera_alerts: bool  # cameras.motion_alerts
    start: dt.datetime
    end: dt.datetime | None
    score: float
    box: tuple[float, float, float, float]
    snapshot: str | None


def play_url(web_url: str | None, camera: str, start: dt.datetime) -> str | None:
    """Return the web app's link that plays ``camera`` from just before ``start`` (None
    without a web_url)."""
    if not web_url:
        return None
    query = urlencode({"camera": camera, "start": iso_utc(start - PLAY_PREROLL)}, safe=":")
    return f"{web_url}/recordings/play?{query}"


class MotionAlerts:
    """Raises a ``motion`` alert for each new motion event of this hub's cameras that is armed."""

    def __init__(self, catalog: Catalog, config: HubConfig, raise_alert: RaiseAlert,
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.catalog = catalog
        self.config = config
        self.raise_alert = raise_alert
        self.clock = clock
        self.last_id: int | None = None  # None: not started; rows up to it were looked at
        self._warned: set[str] = set()  # unreadable settings rows, warned about once each

    def poll(self) -> list[tuple[str, dict[str, object]]]:
        """Look at the new rows (on the catalog thread); return the (camera, details) to raise."""
        with self.catalog.session() as session:
            if self.last_id is None:
                # what happened before the hub started was not news it could send in time
                self.last_id = session.scalar(select(func.max(MotionEvent.id))) or 0
                logger.info("motion alerts: watching motion events after #%d", self.last_id)
                return []
            rows = [self._row(*values) for values in session.execute(
                select(MotionEvent.id, Camera.name, Camera.motion_alerts,
                       MotionEvent.start_time, MotionEvent.end_time, MotionEvent.score,
                       MotionEvent.box_x, MotionEvent.box_y, MotionEvent.box_w,
                       MotionEvent.box_h, MotionEvent.snapshot_path)
                .join(Camera, Camera.id == MotionEvent.camera_id)
                .where(MotionEvent.id > self.last_id, Camera.hub_id == self.catalog.hub_id)
                .order_by(MotionEvent.id).limit(BATCH))]
            if not rows:
                return []
            settings = dict(session.execute(select(Setting.key, Setting.value)
                                            .where(Setting.key.startswith(PREFIX))).all())
        self.last_id = rows[-1].id
        schedule = self._schedule(settings)
        return [(row.camera, self._details(row)) for row in rows if self._wanted(row, schedule)]

    def run_once(self) -> int:
        """Poll and raise the alerts (tests call it straight); return how many were raised."""
        due = self.poll()
        for camera, details in due:
            self.raise_alert(ALERT_KIND, camera, details)
        return len(due)

    @staticmethod
    def _row(event_id: int, camera: str, alerts: bool, start: dt.datetime,
             end: dt.datetime | None, score: float, x: float, y: float, w: float, h: float,
             snapshot: str | None) -> MotionRow:
        return MotionRow(event_id, camera, bool(alerts), start, end, score, (x, y, w, h),
                         snapshot)

    def _schedule(self, settings: dict[str, str]) -> MotionSchedule:
        schedule, problems = schedule_from_settings(settings)
        for problem in problems:
            if problem not in self._warned:
                self._warned.add(problem)
                logger.warning("motion alerts: ignoring the setting %s", problem)
        return schedule

    def alerts_on(self, camera: str, column: bool) -> bool:
        """Tell whether a camera's motion alerts are on: the config file's key wins."""
        configured = self.config.camera(camera)
        if configured is not None and configured.motion_alerts is not None:
            return configured.motion_alerts
        return column

    def _wanted(self, row: MotionRow, schedule: MotionSchedule) -> bool:
        if not self.alerts_on(row.camera, row.camera_alerts):
            return False
        if self.clock() - row.start > MAX_AGE:
            logger.info("motion event %d of %s started at %s: too old to email", row.id,
                        row.camera, iso_utc(row.start))
            return False
        return schedule.armed(row.camera, row.start)

    def _details(self, row: MotionRow) -> dict[str, object]:
        x, y, w, h = row.box
        return {"event_id": row.id, "start": iso_utc(row.start),
                "end": iso_utc(row.end) if row.end else None, "score": round(row.score, 4),
                "box": {"x": x, "y": y, "w": w, "h": h}, "snapshot": row.snapshot,
                "play_url": play_url(self.config.alerts.web_url, row.camera, row.start)}


def snapshot_attacher(storage: Storage, hub_id: str,
                      ) -> Callable[[str, dict[str, Any]], tuple[Attachment, ...]]:
    """Return the alert center's ``attach``: a motion alert of this hub carries its snapshot."""

    def attach(kind: str, details: dict[str, Any]) -> tuple[Attachment, ...]:
        relative = details.get("snapshot")
        if kind != ALERT_KIND or not isinstance(relative, str) or not relative:
            return ()
        if details.get("hub", hub_id) != hub_id:
            return ()  # another hub's snapshot is on that hub's storage, not here
        data = read_snapshot(storage, relative)
        if data is None:
            return ()
        name = f"motion-{details.get('event_id', 'snapshot')}.jpg"
        return (Attachment(name, "image/jpeg", data),)

    return attach


def read_snapshot(storage: Storage, relative: str) -> bytes | None:
    """Read a snapshot JPEG inside the storage root (None: gone, too big or outside it)."""
    try:
        path: Path = storage.resolve_catalog_path(relative)
        if path.stat().st_size > SNAPSHOT_MAX_BYTES:
            logger.warning("motion snapshot %s is too big to email", relative)
            return None
        return path.read_bytes()
    except ValueError:
        logger.warning("motion snapshot path %r leaves the storage root: not attached", relative)
    except OSError as exc:
        logger.info("motion snapshot %s not attached: %s", relative, exc.strerror)
    return None
