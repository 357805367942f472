"""What the hubs last said about themselves and their cameras, read from the catalog for monitoring.

Each hub writes its ``hub_status`` row (one per hub, by ``hub_id``: heartbeat, disk, health
checks, retention counters) and one ``camera_status`` row per camera it records; a few small queries here read them for
``/api/v1/health`` and ``/metrics``. A camera row the hub stopped refreshing counts as offline,
by the same rule as every other page (`webapp.cameras_service.STALE_AFTER`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from typing import Any

from sqlalchemy import func, select

from nvrlib.catalog.models import Alert, Camera, CameraStatus, Hub, HubStatus, Segment
from nvrlib.names import DEFAULT_HUB

from .. import hub_storage
from ..cameras_service import STALE_AFTER, STOPPED, UNKNOWN
from ..extensions import db

logger = logging.getLogger(__name__)

# The hub beats every few seconds; none for this long means it is stopped, hung or cut off.
HEARTBEAT_MAX_AGE = dt.timedelta(seconds=30)
FAILED = "failed"
# Every state a camera can report (recorder.supervise.states.State), plus "unknown" for a silent hub.
CAMERA_STATES = ("stopped", "starting", "running", "backoff", "stopping", FAILED, UNKNOWN)
# Alert.status values, so that a status with no alert yet still reads 0.
ALERT_STATUSES = ("pending", "sent", "failed", "logged", "muted", "suppressed")


@dataclasses.dataclass(frozen=True)
class HubView:
    """A hub's heartbeat, disk and check results as of the last time it wrote them."""

    running: bool  # a heartbeat within HEARTBEAT_MAX_AGE and no clean stop since
    heartbeat_age: float | None  # seconds; None when it never beat
    disk_total: int
    disk_free: int
    footage_bytes: int
    retention_deleted_segments: int
    retention_deleted_bytes: int
    checks: dict[str, bool]
    # cameras whose edge sends but which write no segment, per the hub's streams check
    not_recording: tuple[str, ...] = ()
    hub_id: str = DEFAULT_HUB
    heartbeat_at: dt.datetime | None = None
    listen: str = ""  # where it listens, as it registered (hubs.listen)
    storage_reachable: bool | None = None  # the web app finds its storage (None: not asked)

    @property
    def free_percent(self) -> float | None:
        """Return the free share of the disk in percent, or None before the hub measured it."""
        if self.disk_total <= 0:
            return None
        return 100.0 * self.disk_free / self.disk_total


@dataclasses.dataclass(frozen=True)
class CameraView:
    """One camera's latest status, with a silent hub's last word turned into "unknown"."""

    name: str
    expected: bool  # enabled and not rejected (approved or pending): it should be recording
    state: str
    online: bool
    fps: float
    bitrate_bps: float
    bytes_in: int
    bytes_written: int
    frames: int
    restarts: int
    last_segment_end: dt.datetime | None
    alerts_muted: bool

    @property
    def failed(self) -> bool:
        """Tell whether the hub gave up restarting this camera's stream for now."""
        return self.state == FAILED

    @property
    def offline(self) -> bool:
        """Tell whether the camera should record but does not (failed ones count too)."""
        return self.expected and not self.online


def _checks(text: str | None) -> dict[str, bool]:
    """Read hub_status.checks ({name: {"ok": bool, ...}}), keeping only each check's verdict."""
    try:
        data: Any = json.loads(text or "{}")
    except ValueError:
        logger.warning("hub_status.checks is not JSON; ignoring it")
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(name): bool(entry.get("ok")) for name, entry in data.items()
            if isinstance(entry, dict)}


def read_hubs(current: dt.datetime, storage: bool = False) -> list[HubView]:
    """Return every hub as of ``current``, by id: those registered in ``hubs`` and any with a
    ``hub_status`` row (``main`` alone, not running, when there is neither).

    With ``storage``, also whether the web app reaches each hub's storage (webapp.hub_storage).
    """
    listens = dict(db.session.execute(select(Hub.id, Hub.listen)).all())
    rows = {row.hub_id: row for row in db.session.scalars(select(HubStatus))}
    ids = sorted(set(listens) | set(rows)) or [DEFAULT_HUB]
    roots = hub_storage.storage_map().roots if storage else None
    return [_hub_view(hub_id, rows.get(hub_id), current, listens.get(hub_id) or "",
                      None if roots is None else hub_id in roots) for hub_id in ids]


def _hub_view(hub_id: str, row: HubStatus | None, current: dt.datetime, listen: str,
              reachable: bool | None) -> HubView:
    """A hub's row as of ``current`` (a hub that never ran: not running, zeros)."""
    if row is None:
        return HubView(False, None, 0, 0, 0, 0, 0, {}, (), hub_id, None, listen, reachable)
    age = (current - row.heartbeat_at).total_seconds() if row.heartbeat_at else None
    stopped = (row.stopped_at is not None and row.heartbeat_at is not None
               and row.stopped_at >= row.heartbeat_at)
    # A heartbeat slightly ahead of our clock is fresh; far ahead is a clock to distrust.
    fresh = age is not None and abs(age) <= HEARTBEAT_MAX_AGE.total_seconds()
    return HubView(fresh and not stopped, age, row.disk_total_bytes or 0,
                   row.disk_free_bytes or 0, row.footage_bytes or 0,
                   row.retention_deleted_segments or 0, row.retention_deleted_bytes or 0,
                   _checks(row.checks), _not_recording(row.checks), hub_id, row.heartbeat_at,
                   listen, reachable)


def _not_recording(text: str | None) -> tuple[str, ...]:
    """Read the names the hub's streams check lists as not recording (health.md)."""
    try:
        entry: Any = json.loads(text or "{}").get("streams")
    except (ValueError, AttributeError):
        return ()  # _checks has said so already
    names = entry.get("not_recording") if isinstance(entry, dict) else None
    if not isinstance(names, list):
        return ()
    return tuple(sorted(str(name) for name in names))


def read_cameras(current: dt.datetime) -> list[CameraView]:
    """Return every camera of the catalog with its status, by name."""
    query = (select(Camera, CameraStatus)
             .outerjoin(CameraStatus, CameraStatus.camera_id == Camera.id)
             .order_by(Camera.name))
    return [_camera_view(camera, status, current)
            for camera, status in db.session.execute(query)]


def _camera_view(camera: Camera, status: CameraStatus | None,
                 current: dt.datetime) -> CameraView:
    # A pending camera wants to record too (it only waits for an admin): dark, it is offline.
    expected = camera.enabled and camera.approval != "rejected"
    muted = camera.alerts_muted_until is not None and camera.alerts_muted_until > current
    if status is None:  # the hub never ran this camera
        return CameraView(camera.name, expected, UNKNOWN, False, 0.0, 0.0, 0, 0, 0, 0, None,
                          muted)
    # The hub rewrites live rows every 3 s; an old row that claims a live camera is its last word.
    stale = (current - status.updated_at > STALE_AFTER
             and (status.online or status.state != STOPPED))
    live = not stale and status.online
    return CameraView(
        camera.name, expected, UNKNOWN if stale else status.state, live,
        status.fps if live else 0.0, status.bitrate_bps if live else 0.0, status.bytes_in or 0,
        status.bytes_written or 0, status.frames or 0, status.restarts or 0,
        status.last_segment_end, muted)


def footage_by_camera() -> dict[str, int]:
    """Return the bytes of each camera's recordings on disk (status ok), by camera name."""
    # Grouped by camera_id, which ix_segments_camera_start is sorted by (no temporary b-tree).
    query = (select(Segment.camera_id, func.sum(Segment.size_bytes))
             .where(Segment.status == "ok").group_by(Segment.camera_id))
    totals = dict(db.session.execute(query).all())
    names = dict(db.session.execute(select(Camera.id, Camera.name)).all())
    return {names[camera_id]: int(total or 0) for camera_id, total in totals.items()
            if camera_id in names}


def alert_counts() -> dict[str, int]:
    """Return how many alerts there are of each delivery status (every known status listed)."""
    counts = dict.fromkeys(ALERT_STATUSES, 0)
    query = select(Alert.status, func.count()).group_by(Alert.status)
    counts.update({status: int(count) for status, count in db.session.execute(query)})
    return counts
