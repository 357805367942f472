"""Face recognition's settings in the web app: each camera's two switches (faces on, alerts for
unknown faces) and the site's match threshold and armed hours (docs/design/faces.md, 3 and 4).

The web app writes, the hubs read: ``cameras.faces_enabled`` and ``faces_unknown_alerts``, and
the settings rows ``faces.threshold``, ``faces.armed_hours`` and ``faces.armed_hours.<camera>``
(the same hours syntax as motion's, nvrlib/motion_schedule.py). A bad value raises
FacesSettingsError naming its field (the API's 400).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from nvrlib.catalog.models import Camera, Setting
from nvrlib.faces_gallery import MAX_THRESHOLD as THRESHOLD_MAX
from nvrlib.faces_gallery import MIN_THRESHOLD as THRESHOLD_MIN
from nvrlib.faces_gallery import THRESHOLD_KEY, ThresholdError, parse_threshold, read_threshold
from nvrlib.motion_schedule import FACES_PREFIX, armed_hours_key

from .catalog_queries import iso_utc
from .extensions import db
from .motion_service import (  # camera_row raises its UnknownCamera for either page
    MotionSettingsError, camera_row, hours_text, put_setting,
)
from .security import now

logger = logging.getLogger(__name__)

ARMED_HOURS_KEY = armed_hours_key(None, FACES_PREFIX)  # faces.armed_hours[.<camera>]
# an edge that asked for its gallery within this long is running faces: the "faces" badge
FACES_ACTIVE_WINDOW = dt.timedelta(minutes=10)
CAMERA_FIELDS = frozenset({"enabled", "unknown_alerts"})
SETTINGS_FIELDS = frozenset({"threshold", "armed_hours", "armed_hours_by_camera"})


class FacesSettingsError(MotionSettingsError):
    """A face setting the web app refuses; ``field`` names it (armed hours are checked by
    motion_service.hours_text, which raises its parent: catch MotionSettingsError)."""


@dataclass(frozen=True)
class CameraFaces:
    """A camera's face switches and when its edge last ran faces."""

    camera: str
    enabled: bool
    unknown_alerts: bool
    seen_at: dt.datetime | None

    def active(self, current: dt.datetime) -> bool:
        """Tell whether recognition runs there: on, and its edge asked within the window."""
        return (self.enabled and self.seen_at is not None
                and current - self.seen_at <= FACES_ACTIVE_WINDOW)

    def to_json(self) -> dict[str, Any]:
        """Return the API's JSON object of the switches."""
        return {"camera": self.camera, "enabled": self.enabled,
                "unknown_alerts": self.unknown_alerts,
                "seen_at": iso_utc(self.seen_at) if self.seen_at else None,
                "active": self.active(now())}


def badge_state(enabled: bool, seen_at: dt.datetime | None) -> dict[str, Any]:
    """Return a camera's ``faces`` object of GET /api/v1/cameras."""
    camera = CameraFaces("", enabled, False, seen_at)
    return {"enabled": enabled, "active": camera.active(now()),
            "seen_at": iso_utc(seen_at) if seen_at else None}


def active_cameras() -> set[str]:
    """Return the names of the cameras where recognition runs now (the pages' badges)."""
    since = now() - FACES_ACTIVE_WINDOW
    return set(db.session.scalars(select(Camera.name).where(
        Camera.faces_enabled.is_(True), Camera.faces_seen_at >= since)))


def camera_faces(name: str) -> CameraFaces:
    """Return camera ``name``'s face switches."""
    camera = camera_row(name)
    return CameraFaces(camera.name, camera.faces_enabled, camera.faces_unknown_alerts,
                       camera.faces_seen_at)


def _flag(data: Mapping[str, Any], field: str) -> bool:
    value = data[field]
    if not isinstance(value, bool):
        raise FacesSettingsError(field, "must be true or false")
    return value


def save_camera_faces(name: str, data: Mapping[str, Any], user: str) -> CameraFaces:
    """Change either switch of a camera (``enabled``, ``unknown_alerts``)."""
    unknown = sorted(set(data) - CAMERA_FIELDS)
    if unknown:
        raise FacesSettingsError(unknown[0], "unknown field; use enabled or unknown_alerts")
    changes = {field: _flag(data, field) for field in CAMERA_FIELDS & set(data)}
    camera = camera_row(name)
    if "enabled" in changes:
        camera.faces_enabled = changes["enabled"]
    if "unknown_alerts" in changes:
        camera.faces_unknown_alerts = changes["unknown_alerts"]
    db.session.commit()
    logger.info("face switches of %s changed by %s: %s", name, user, changes)
    return camera_faces(name)


# -- the site's settings -----------------------------------------------------------------------

@dataclass(frozen=True)
class FacesSettings:
    """The match threshold and the hours unknown faces are emailed (all cameras, per camera)."""

    threshold: float
    armed_hours: str
    armed_hours_by_camera: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        """Return the API's JSON object of the settings."""
        return {"threshold": self.threshold, "armed_hours": self.armed_hours,
                "armed_hours_by_camera": dict(sorted(self.armed_hours_by_camera.items()))}


def _rows() -> dict[str, str]:
    rows = db.session.execute(select(Setting.key, Setting.value)
                              .where(Setting.key.startswith(FACES_PREFIX, autoescape=True)))
    return {key: value for key, value in rows}


def threshold() -> float:
    """Return the distance under which a face is a known person's (``faces.threshold``)."""
    return read_threshold(db.session)


def get_settings() -> FacesSettings:
    """Return the face settings as stored."""
    rows = _rows()
    prefix = ARMED_HOURS_KEY + "."
    cameras = {key[len(prefix):]: value for key, value in rows.items()
               if key.startswith(prefix) and value}
    return FacesSettings(threshold(), rows.get(ARMED_HOURS_KEY, ""), cameras)


def _threshold(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value):
        raise FacesSettingsError("threshold", f"must be a number from {THRESHOLD_MIN:.2f} to "
                                              f"{THRESHOLD_MAX:.2f}")
    text = f"{float(value):.3f}"
    try:
        parse_threshold(text)  # the limits the hubs read it with
    except ThresholdError:
        raise FacesSettingsError("threshold", f"must be a number from {THRESHOLD_MIN:.2f} to "
                                              f"{THRESHOLD_MAX:.2f}") from None
    return text


def check_settings(data: Mapping[str, Any]) -> dict[str, str]:
    """Check a change of face settings; return the settings rows to write ("" removes one)."""
    unknown = sorted(set(data) - SETTINGS_FIELDS)
    if unknown:
        raise FacesSettingsError(unknown[0], "unknown field; use threshold, armed_hours or "
                                             "armed_hours_by_camera")
    rows: dict[str, str] = {}
    if "threshold" in data:
        rows[THRESHOLD_KEY] = _threshold(data["threshold"])
    if "armed_hours" in data:
        rows[ARMED_HOURS_KEY] = hours_text(data["armed_hours"], "armed_hours")
    if "armed_hours_by_camera" in data:
        cameras = data["armed_hours_by_camera"]
        if not isinstance(cameras, dict):
            raise FacesSettingsError("armed_hours_by_camera", "must be an object of camera: "
                                                              "hours")
        known = set(db.session.scalars(select(Camera.name)))
        for camera, hours in cameras.items():
            if camera not in known:
                raise FacesSettingsError("armed_hours_by_camera",
                                         f"there is no camera named {camera!r}")
            rows[armed_hours_key(camera, FACES_PREFIX)] = hours_text(hours,
                                                         f"armed_hours_by_camera.{camera}")
    return rows


def save_settings(data: Mapping[str, Any], user: str) -> FacesSettings:
    """Change the threshold or the armed hours; return the settings."""
    for key, value in check_settings(data).items():
        put_setting(key, value, user)
    db.session.commit()
    logger.info("face settings changed by %s: %s", user, ", ".join(sorted(data)))
    return get_settings()
