"""Motion alerts: the hub emails a camera's motion when its alerts are on and armed.

Decoupled from whoever writes motion_events rows (the edge's reports, the hub's own detector):
a job of the HealthMonitor reads, when the hub stores a row (HealthMonitor.news), the rows
newer than the last it saw of this hub's cameras, decides for each whether the camera's motion alerts are on (its ``motion_alerts`` key
in the config file, else its column) and armed (nvrlib/motion_schedule.py: away, or within the
armed hours), and raises one ``motion`` alert per event, with the snapshot's path for the email
to attach and a link that plays the moment. An edge reports an event at its start without a
picture and at its end with the picture of its peak, so an event's alert waits for the picture
(until the event ends, or SNAPSHOT_WAIT); new rows are found by id, and an event alerts once
(the by-id poll and the schedule are recorder/health/row_alerts.py's, shared with face alerts).
The alert center debounces them per camera like any alert (docs/design/health.md, "Motion
alerts").
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select

from nvrlib.catalog.models import Camera, MotionEvent, utcnow
from nvrlib.motion_schedule import PLAY_PREROLL, MotionSchedule
from recorder.config import HubConfig
from recorder.health.mailer import Attachment
from recorder.health.messages import iso_utc
from recorder.health.row_alerts import (  # noqa: F401  (POLL_SECONDS, MAX_AGE: the job's own)
    MAX_AGE, POLL_SECONDS, NewRows, RaiseAlert, RowAlerts,
)
from recorder.store.catalog import Catalog
from recorder.store.storage import Storage

logger = logging.getLogger(__name__)

# An edge reports an event at its start without a picture, and again at its end with the
# picture of its peak: an alert waits for the picture, until the event ends or this long.
SNAPSHOT_WAIT = dt.timedelta(seconds=8)
SNAPSHOT_MAX_BYTES = 5 * 1024 * 1024  # SendGrid takes 30 MB per mail; a snapshot is ~50 kB
ALERT_KIND = "motion"
# the alert kinds that carry a picture of this hub's storage, and the detail naming it
PICTURES = {"motion": "snapshot", "face": "crop"}

_ROWS = (select(MotionEvent.id, Camera.name, Camera.motion_alerts, MotionEvent.start_time,
                MotionEvent.end_time, MotionEvent.score, MotionEvent.box_x, MotionEvent.box_y,
                MotionEvent.box_w, MotionEvent.box_h, MotionEvent.snapshot_path)
         .join(Camera, Camera.id == MotionEvent.camera_id))


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


class MotionAlerts(RowAlerts):
    """Raises a ``motion`` alert for each new motion event of this hub's cameras that is armed."""

    kind = ALERT_KIND

    def __init__(self, catalog: Catalog, config: HubConfig, raise_alert: RaiseAlert,
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        super().__init__(catalog, config, raise_alert, clock)
        self.new_rows = NewRows(MotionEvent.id, ALERT_KIND, "motion event")
        # events that want an alert but have no picture yet: id -> when first seen
        self._waiting: dict[int, dt.datetime] = {}

    def poll(self) -> list[tuple[str, dict[str, object]]]:
        """Look at the new rows (on the catalog thread); return the (camera, details) to raise."""
        with self.catalog.session() as session:
            rows = [self._row(*values) for values in self.new_rows.read(
                session, _ROWS.where(Camera.hub_id == self.catalog.hub_id))]
            waiting = [self._row(*values) for values in session.execute(
                _ROWS.where(MotionEvent.id.in_(sorted(self._waiting))))] if self._waiting else []
            if not rows and not waiting:
                return []
            settings = self.settings(session)
        schedule = self.schedule(settings)
        due = []
        for row in waiting + [r for r in rows if self._wanted(r, schedule)]:
            if self._picture_ready(row):
                self._waiting.pop(row.id, None)
                due.append((row.camera, self._details(row)))
        return due

    def next_poll_seconds(self) -> float:
        """Look again soon while an event waits for its picture (its end report may not come)."""
        return POLL_SECONDS if self._waiting else super().next_poll_seconds()

    def _picture_ready(self, row: MotionRow) -> bool:
        """Tell whether an event's alert may go: it has its picture, it ended, or it waited."""
        first_seen = self._waiting.setdefault(row.id, self.clock())
        return bool(row.snapshot) or row.end is not None or \
            self.clock() - first_seen >= SNAPSHOT_WAIT

    @staticmethod
    def _row(event_id: int, camera: str, alerts: bool, start: dt.datetime,
             end: dt.datetime | None, score: float, x: float, y: float, w: float, h: float,
             snapshot: str | None) -> MotionRow:
        return MotionRow(event_id, camera, bool(alerts), start, end, score, (x, y, w, h),
                         snapshot)

    def alerts_on(self, camera: str, column: bool) -> bool:
        """Tell whether a camera's motion alerts are on: the config file's key wins."""
        configured = self.config.camera(camera)
        if configured is not None and configured.motion_alerts is not None:
            return configured.motion_alerts
        return column

    def _wanted(self, row: MotionRow, schedule: MotionSchedule) -> bool:
        if not self.alerts_on(row.camera, row.camera_alerts):
            return False
        if self.too_old(f"motion event {row.id}", row.camera, row.start):
            return False
        return schedule.armed(row.camera, row.start)

    def _details(self, row: MotionRow) -> dict[str, object]:
        x, y, w, h = row.box
        return {"event_id": row.id, "start": iso_utc(row.start),
                "end": iso_utc(row.end) if row.end else None, "score": round(row.score, 4),
                "box": {"x": x, "y": y, "w": w, "h": h}, "snapshot": row.snapshot,
                "play_url": play_url(self.config.alerts.web_url, row.camera, row.start)}


def snapshot_attacher(storage: Storage, hub_id: str, pictures: dict[str, str] | None = None,
                      ) -> Callable[[str, dict[str, Any]], tuple[Attachment, ...]]:
    """Return the alert center's ``attach``: an alert of this hub whose kind has a picture
    (``pictures``: kind -> the detail naming it; default PICTURES) carries that picture."""
    pictures = PICTURES if pictures is None else pictures

    def attach(kind: str, details: dict[str, Any]) -> tuple[Attachment, ...]:
        relative = details.get(pictures.get(kind, ""))
        if not isinstance(relative, str) or not relative:
            return ()
        if details.get("hub", hub_id) != hub_id:
            return ()  # another hub's picture is on that hub's storage, not here
        data = read_snapshot(storage, relative)
        if data is None:
            return ()
        number = details.get("event_id", details.get("sighting_id", "picture"))
        return (Attachment(f"{kind}-{number}.jpg", "image/jpeg", data),)

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
