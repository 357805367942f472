"""What the jobs that email new catalog rows share (motion events, face sightings).

Such a job reads, on the catalog thread, the rows newer than the last it saw, by id, at most
``BATCH`` a poll, starting after the newest row when the hub starts (what happened while it was
down is not news it could send in time); reads the armed hours once per poll
(nvrlib/motion_schedule.py), warning once about a settings row it cannot read; leaves rows older
than ``MAX_AGE`` unsent (an edge's spool emptying after an outage reports history); and raises
one alert per row. docs/design/health.md, "Motion alerts" and "Face alerts".
"""

from __future__ import annotations

import abc
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Row, Select, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from nvrlib.catalog.models import Setting, utcnow
from nvrlib.motion_schedule import FACES_PREFIX, PREFIX, MotionSchedule, schedule_from_settings
from recorder.config import HubConfig
from recorder.health.messages import iso_utc
from recorder.store.catalog import Catalog

logger = logging.getLogger(__name__)

POLL_SECONDS = 2.0  # how often a job looks again while a row waits for something (a picture)
# The hub says when it stores a row (HealthMonitor.news): the job runs then. This safety poll
# only catches a row stored some other way.
SAFETY_SECONDS = 30.0
BATCH = 200  # rows read per poll at most; the rest come on the next
# A row reported this long after it started (an edge's spool emptying after an outage) is
# history, not news: it is listed on the Events page but not emailed.
MAX_AGE = dt.timedelta(minutes=10)

RaiseAlert = Callable[[str, str | None, dict[str, object]], None]


class NewRows:
    """The by-id poll: a table's rows newer than the last seen, oldest first."""

    def __init__(self, id_column: InstrumentedAttribute[int], kind: str, noun: str,
                 batch: int = BATCH) -> None:
        self.id_column = id_column
        self.kind, self.noun = kind, noun  # for the log: "motion alerts: watching motion events"
        self.batch = batch
        self.last_id: int | None = None  # None: not started; rows up to it were looked at

    def read(self, session: Session, query: Select[Any]) -> Sequence[Row[Any]]:
        """Return the new rows of ``query`` (nothing at the first call, which marks the start)."""
        if self.last_id is None:
            self.last_id = session.scalar(select(func.max(self.id_column))) or 0
            logger.info("%s alerts: watching %ss after #%d", self.kind, self.noun, self.last_id)
            return []
        rows = session.execute(query.where(self.id_column > self.last_id)
                               .order_by(self.id_column).limit(self.batch)).all()
        if rows:
            self.last_id = rows[-1][0]
        return rows


class RowAlerts(abc.ABC):
    """A HealthMonitor job raising one ``kind`` alert per new row that wants one."""

    kind = ""

    def __init__(self, catalog: Catalog, config: HubConfig, raise_alert: RaiseAlert,
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.catalog = catalog
        self.config = config
        self.raise_alert = raise_alert
        self.clock = clock
        self._warned: set[str] = set()  # unreadable settings rows, warned about once each

    @abc.abstractmethod
    def poll(self) -> list[tuple[str, dict[str, object]]]:
        """Look at the new rows (on the catalog thread); return the (camera, details) to raise."""

    def next_poll_seconds(self) -> float:
        """Seconds until the job must look again with no news of a new row."""
        return SAFETY_SECONDS

    def run_once(self) -> int:
        """Poll and raise the alerts (tests call it straight); return how many were raised."""
        due = self.poll()
        for camera, details in due:
            self.raise_alert(self.kind, camera, details)
        return len(due)

    @staticmethod
    def settings(session: Session) -> dict[str, str]:
        """The settings rows the schedules read (``motion.*``, ``faces.*``)."""
        return dict(session.execute(select(Setting.key, Setting.value).where(or_(
            Setting.key.startswith(PREFIX), Setting.key.startswith(FACES_PREFIX)))).all())

    def schedule(self, settings: dict[str, str], prefix: str = PREFIX) -> MotionSchedule:
        """The armed hours under ``prefix``; an unreadable row is warned about once, ignored."""
        schedule, problems = schedule_from_settings(settings, prefix)
        for problem in problems:
            if problem not in self._warned:
                self._warned.add(problem)
                logger.warning("%s alerts: ignoring the setting %s", self.kind, problem)
        return schedule

    def too_old(self, what: str, camera: str, start: dt.datetime) -> bool:
        """Tell (and log) whether a row started too long ago to be news."""
        if self.clock() - start <= MAX_AGE:
            return False
        logger.info("%s of %s started at %s: too old to email", what, camera, iso_utc(start))
        return True
