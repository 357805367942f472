"""Face alerts: the hub emails a sighting of someone it should tell about (docs/design/health.md,
"Face alerts"; docs/design/faces.md, section 4).

A HealthMonitor job run when the hub stores a sighting (HealthMonitor.news), the same shape as motion alerts (recorder/health/row_alerts.py):
it reads the new ``face_sightings`` rows of this hub's cameras by id and raises one ``face``
alert for each sighting that is wanted:

- a known person whose ``people.alert`` is on: at any camera and hour;
- an unknown face at a camera with ``faces_unknown_alerts`` on, within the armed hours
  (``faces.armed_hours[.<camera>]``, the site's ``motion.away`` and ``motion.timezone``).

The first report of a sighting already carries its crop, so an alert never waits for a picture;
the crop is attached by the alert center (``snapshot_attacher``). The crops of sightings the web
app erased (their person was deleted) are another job's: HealthMonitor.sweep_face_crops.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable

from sqlalchemy import select

from nvrlib.catalog.models import Camera, FaceSighting, Person, utcnow
from nvrlib.motion_schedule import FACES_PREFIX, MotionSchedule
from recorder.config import HubConfig
from recorder.health.messages import iso_utc
from recorder.health.motion_alerts import play_url
from recorder.health.row_alerts import NewRows, RaiseAlert, RowAlerts
from recorder.store.catalog import Catalog

logger = logging.getLogger(__name__)

ALERT_KIND = "face"
_ROWS = (select(FaceSighting.id, Camera.name, Camera.faces_unknown_alerts,
                FaceSighting.start_time, FaceSighting.person_id, Person.name, Person.alert,
                FaceSighting.distance, FaceSighting.crop_path, FaceSighting.erased_at)
         .join(Camera, Camera.id == FaceSighting.camera_id)
         .outerjoin(Person, Person.id == FaceSighting.person_id))


@dataclasses.dataclass(frozen=True)
class SightingRow:
    """What a face alert needs of a face_sightings row, its camera and its person."""

    id: int
    camera: str
    unknown_alerts: bool  # cameras.faces_unknown_alerts
    start: dt.datetime
    person_id: int | None
    person: str | None
    person_alert: bool  # people.alert
    distance: float | None
    crop: str | None
    erased: bool


class FaceAlerts(RowAlerts):
    """Raises a ``face`` alert for each new sighting of this hub's cameras that is wanted."""

    kind = ALERT_KIND

    def __init__(self, catalog: Catalog, config: HubConfig, raise_alert: RaiseAlert,
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        super().__init__(catalog, config, raise_alert, clock)
        self.new_rows = NewRows(FaceSighting.id, ALERT_KIND, "face sighting")

    def poll(self) -> list[tuple[str, dict[str, object]]]:
        """Look at the new rows (on the catalog thread); return the (camera, details) to raise."""
        with self.catalog.session() as session:
            rows = [_row(*values) for values in self.new_rows.read(
                session, _ROWS.where(Camera.hub_id == self.catalog.hub_id))]
            if not rows:
                return []
            settings = self.settings(session)
        schedule = self.schedule(settings, FACES_PREFIX)
        return [(row.camera, self._details(row)) for row in rows if self._wanted(row, schedule)]

    def _wanted(self, row: SightingRow, schedule: MotionSchedule) -> bool:
        if row.erased:
            return False
        if row.person_id is not None and not row.person_alert:
            return False
        if row.person_id is None and not row.unknown_alerts:
            return False
        if self.too_old(f"face sighting {row.id}", row.camera, row.start):
            return False
        # a person's alert is wanted whenever they come; unknown faces only in the armed hours
        return row.person_id is not None or schedule.armed(row.camera, row.start)

    def _details(self, row: SightingRow) -> dict[str, object]:
        return {"sighting_id": row.id, "person": row.person,
                "distance": None if row.distance is None else round(row.distance, 3),
                "start": iso_utc(row.start), "crop": row.crop,
                "play_url": play_url(self.config.alerts.web_url, row.camera, row.start)}


def _row(sighting_id: int, camera: str, unknown_alerts: bool, start: dt.datetime,
         person_id: int | None, person: str | None, person_alert: bool | None,
         distance: float | None, crop: str | None, erased_at: dt.datetime | None) -> SightingRow:
    return SightingRow(sighting_id, camera, bool(unknown_alerts), start, person_id, person,
                       bool(person_alert), distance, crop, erased_at is not None)
