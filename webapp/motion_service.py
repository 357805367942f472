"""Motion in the web app: each camera's motion settings, the motion-alert schedule, snapshots.

The web app writes what the detectors and the hub read: a camera's ``motion_*`` columns (with
``motion_updated_at`` = now on each change, which tells the camera's detector to reload), and
the ``motion.*`` settings rows of nvrlib/motion_schedule.py. Used by the admin pages and the
JSON API alike; every value is checked here and a bad one raises MotionSettingsError naming
its field.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import url_for
from sqlalchemy import delete, select

from nvrlib.catalog.models import Camera, MotionEvent, Setting
from nvrlib.motion_schedule import (
    AWAY_KEY, PLAY_PREROLL, PREFIX, TIMEZONE_KEY, ScheduleError, armed_hours_key,
    format_armed_hours, parse_armed_hours, parse_timezone,
)

from . import hub_storage
from .catalog_queries import iso_utc
from .extensions import db
from .security import now
from .service_errors import ServiceError

logger = logging.getLogger(__name__)

SENSITIVITY_MIN, SENSITIVITY_MAX = 1, 100
MAX_POLYGONS = 16  # mask zones per camera
MAX_POINTS = 64  # corners per zone
MAX_MASK_TEXT = 20_000  # the stored JSON, well within what a Text column and an edge reload take
SETTINGS_FIELDS = frozenset({"enabled", "sensitivity", "mask", "alerts"})

Polygon = list[list[float]]


class MotionSettingsError(ServiceError, ValueError):
    """A motion setting the web app refuses; ``field`` names it (the API's 400 says so)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class UnknownCamera(ServiceError, LookupError):
    """No camera of that name is in the catalog."""

    status = 404


@dataclass(frozen=True)
class MotionSettings:
    """A camera's motion settings as the pages and the API show them."""

    camera: str
    enabled: bool
    sensitivity: int
    mask: list[Polygon]
    alerts: bool
    updated_at: dt.datetime | None

    def to_json(self) -> dict[str, Any]:
        """Return the API's JSON object of the settings."""
        return {"camera": self.camera, "enabled": self.enabled, "sensitivity": self.sensitivity,
                "mask": self.mask, "alerts": self.alerts,
                "updated_at": iso_utc(self.updated_at) if self.updated_at else None}


# -- storage of snapshots ------------------------------------------------------------------------

SnapshotRefused = hub_storage.OutsideStorage  # a snapshot path that leaves its storage root


def snapshot_file(event_id: int) -> Path | None:
    """Return the JPEG of a motion event (None: no such event, no snapshot, or not on disk).

    Raises SnapshotRefused for a catalog path that escapes the storage root of its hub, and
    hub_storage.StorageUnreachable when that hub's storage is not reachable from here.
    """
    row = db.session.execute(select(MotionEvent.snapshot_path, MotionEvent.hub_id)
                             .where(MotionEvent.id == event_id)).first()
    if row is None or not row.snapshot_path:
        return None
    try:
        return hub_storage.stored_file(row.hub_id, row.snapshot_path)
    except hub_storage.OutsideStorage:
        raise SnapshotRefused(f"the snapshot of motion event {event_id} is outside the "
                              "storage") from None


def snapshot_url(event_id: int) -> str:
    """Return the URL of a motion event's snapshot."""
    return url_for("api.motion_snapshot", event_id=event_id)


def play_url(camera: str, start: dt.datetime) -> str:
    """Return the player page's URL for the moment a motion event starts (with a pre-roll)."""
    return url_for("recordings.play", camera=camera, start=iso_utc(start - PLAY_PREROLL))


# -- a camera's motion settings ------------------------------------------------------------------

def camera_row(name: str) -> Camera:
    """Return the catalog row of camera ``name`` (UnknownCamera when there is none)."""
    camera = db.session.scalar(select(Camera).where(Camera.name == name))
    if camera is None:
        raise UnknownCamera(f"there is no camera named {name!r}")
    return camera


def _stored_mask(text: str) -> list[Polygon]:
    try:
        return check_mask(json.loads(text or "[]"))
    except (ValueError, MotionSettingsError):
        return []  # a row the web app did not write: show no zones rather than fail the page


def settings_of(camera: Camera) -> MotionSettings:
    """Return a camera row's motion settings."""
    return MotionSettings(camera.name, camera.motion_enabled, camera.motion_sensitivity,
                          _stored_mask(camera.motion_mask), camera.motion_alerts,
                          camera.motion_updated_at)


def get_settings(name: str) -> MotionSettings:
    """Return the motion settings of camera ``name``."""
    return settings_of(camera_row(name))


def _coordinate(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MotionSettingsError("mask", f"{where} is not a number")
    if not 0.0 <= value <= 1.0:
        raise MotionSettingsError("mask", f"{where} is {value!r}, outside 0..1 of the frame")
    return round(float(value), 5)


def check_mask(value: Any) -> list[Polygon]:
    """Check a mask: a list of polygons, each a list of 3 or more [x, y] points in 0..1."""
    if not isinstance(value, list):
        raise MotionSettingsError("mask", "must be a list of polygons")
    if len(value) > MAX_POLYGONS:
        raise MotionSettingsError("mask", f"at most {MAX_POLYGONS} zones")
    polygons = []
    for index, polygon in enumerate(value):
        if not isinstance(polygon, list) or not 3 <= len(polygon) <= MAX_POINTS:
            raise MotionSettingsError("mask", f"zone {index + 1} must be a list of 3 to "
                                              f"{MAX_POINTS} [x, y] points")
        points = []
        for number, point in enumerate(polygon):
            where = f"zone {index + 1}, point {number + 1}"
            if not isinstance(point, list) or len(point) != 2:
                raise MotionSettingsError("mask", f"{where} must be [x, y]")
            points.append([_coordinate(point[0], where), _coordinate(point[1], where)])
        polygons.append(points)
    return polygons


def parse_mask(text: str) -> list[Polygon]:
    """Read and check a mask sent as JSON text (the admin form's hidden field)."""
    if len(text) > MAX_MASK_TEXT:
        raise MotionSettingsError("mask", f"longer than {MAX_MASK_TEXT} characters")
    try:
        value = json.loads(text or "[]")
    except ValueError:
        raise MotionSettingsError("mask", "not valid JSON") from None
    return check_mask(value)


def check_sensitivity(value: Any) -> int:
    """Check a sensitivity: a whole number from 1 to 100 (a JSON number, not a string)."""
    if isinstance(value, bool) or not isinstance(value, int) \
            or not SENSITIVITY_MIN <= value <= SENSITIVITY_MAX:
        raise MotionSettingsError("sensitivity", f"must be a whole number from {SENSITIVITY_MIN} "
                                                 f"to {SENSITIVITY_MAX}")
    return value


def _flag(data: Mapping[str, Any], field: str) -> bool:
    value = data[field]
    if not isinstance(value, bool):
        raise MotionSettingsError(field, "must be true or false")
    return value


def check_changes(data: Mapping[str, Any]) -> dict[str, Any]:
    """Check a change of settings (any of enabled, sensitivity, mask, alerts); return the columns."""
    unknown = sorted(set(data) - SETTINGS_FIELDS)
    if unknown:
        raise MotionSettingsError(unknown[0], "unknown field; use enabled, sensitivity, mask "
                                              "or alerts")
    columns: dict[str, Any] = {}
    if "enabled" in data:
        columns["motion_enabled"] = _flag(data, "enabled")
    if "sensitivity" in data:
        columns["motion_sensitivity"] = check_sensitivity(data["sensitivity"])
    if "mask" in data:
        mask = check_mask(data["mask"])
        text = json.dumps(mask, separators=(",", ":"))
        if len(text) > MAX_MASK_TEXT:
            raise MotionSettingsError("mask", f"longer than {MAX_MASK_TEXT} characters as JSON")
        columns["motion_mask"] = text
    if "alerts" in data:
        columns["motion_alerts"] = _flag(data, "alerts")
    return columns


def save_settings(name: str, data: Mapping[str, Any], user: str) -> MotionSettings:
    """Change a camera's motion settings; each change sets motion_updated_at (the detector
    reloads from it)."""
    columns = check_changes(data)
    camera = camera_row(name)
    for column, value in columns.items():
        setattr(camera, column, value)
    if columns:
        camera.motion_updated_at = now()
    db.session.commit()
    logger.info("motion settings of %s changed by %s: %s", name, user, ", ".join(sorted(data)))
    return settings_of(camera)


# -- the motion-alert schedule -------------------------------------------------------------------

@dataclass(frozen=True)
class MotionAlertSchedule:
    """The away switch, the armed hours (for all and per camera) and the site's time zone."""

    away: bool
    armed_hours: str
    camera_hours: dict[str, str]
    timezone: str

    def to_json(self) -> dict[str, Any]:
        """Return the API's JSON object of the schedule."""
        return {"away": self.away, "armed_hours": self.armed_hours,
                "camera_hours": dict(sorted(self.camera_hours.items())),
                "timezone": self.timezone}


def cameras_with_alerts() -> list[str]:
    """Return the cameras whose motion alerts are on in the web app, sorted."""
    return list(db.session.scalars(select(Camera.name).where(Camera.motion_alerts.is_(True))
                                   .order_by(Camera.name)))


def _settings_rows() -> dict[str, str]:
    rows = db.session.execute(select(Setting.key, Setting.value)
                              .where(Setting.key.startswith(PREFIX, autoescape=True)))
    return {key: value for key, value in rows}


def get_schedule() -> MotionAlertSchedule:
    """Return the motion-alert schedule as stored."""
    rows = _settings_rows()
    prefix = armed_hours_key(None) + "."
    cameras = {key[len(prefix):]: value for key, value in rows.items()
               if key.startswith(prefix) and value}
    return MotionAlertSchedule(rows.get(AWAY_KEY) == "1", rows.get(armed_hours_key(None), ""),
                               cameras, rows.get(TIMEZONE_KEY, ""))


def put_setting(key: str, value: str, user: str) -> None:
    """Write one settings row (uncommitted); an empty value removes it."""
    if not value:
        db.session.execute(delete(Setting).where(Setting.key == key))
        return
    row = db.session.get(Setting, key)
    if row is None:
        db.session.add(Setting(key=key, value=value, updated_at=now(), updated_by=user))
    else:
        row.value, row.updated_at, row.updated_by = value, now(), user


def hours_text(value: Any, field: str) -> str:
    """Check armed hours sent as text; return them in the stored form (MotionSettingsError)."""
    if not isinstance(value, str):
        raise MotionSettingsError(field, "must be a string such as \"22:00-06:00\" (empty: all "
                                         "day)")
    try:
        return format_armed_hours(parse_armed_hours(value))
    except ScheduleError as exc:
        raise MotionSettingsError(field, str(exc)) from None


def check_schedule(data: Mapping[str, Any]) -> dict[str, str]:
    """Check a change of schedule; return the settings rows to write ("" removes one)."""
    unknown = sorted(set(data) - {"away", "armed_hours", "camera_hours", "timezone"})
    if unknown:
        raise MotionSettingsError(unknown[0], "unknown field; use away, armed_hours, "
                                              "camera_hours or timezone")
    rows: dict[str, str] = {}
    if "away" in data:
        rows[AWAY_KEY] = "1" if _flag(data, "away") else ""
    if "armed_hours" in data:
        rows[armed_hours_key(None)] = hours_text(data["armed_hours"], "armed_hours")
    if "timezone" in data:
        zone = data["timezone"]
        if not isinstance(zone, str):
            raise MotionSettingsError("timezone", "must be an IANA name such as Europe/Paris")
        try:
            parse_timezone(zone)
        except ScheduleError as exc:
            raise MotionSettingsError("timezone", str(exc)) from None
        rows[TIMEZONE_KEY] = zone.strip()
    if "camera_hours" in data:
        cameras = data["camera_hours"]
        if not isinstance(cameras, dict):
            raise MotionSettingsError("camera_hours", "must be an object of camera: hours")
        known = set(db.session.scalars(select(Camera.name)))
        for camera, hours in cameras.items():
            if camera not in known:
                raise MotionSettingsError("camera_hours", f"there is no camera named {camera!r}")
            rows[armed_hours_key(camera)] = hours_text(hours, f"camera_hours.{camera}")
    return rows


def save_schedule(data: Mapping[str, Any], user: str) -> MotionAlertSchedule:
    """Change the away switch, the armed hours or the time zone; return the schedule."""
    for key, value in check_schedule(data).items():
        put_setting(key, value, user)
    db.session.commit()
    logger.info("motion alert schedule changed by %s: %s", user, ", ".join(sorted(data)))
    return get_schedule()
