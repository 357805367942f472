"""When motion alerts are armed: the settings rows both the web app and the hub read.

The web app writes, the hub reads (docs/design/health.md, "Motion alerts"; face alerts of
unknown faces read the same rows with the prefix ``faces.`` for their hours, and share the
site's ``motion.away`` and ``motion.timezone``: "Face alerts"):

- ``motion.away``: ``"1"`` arms every camera's motion alerts around the clock;
- ``motion.armed_hours``: the hours they are armed for every camera, e.g. ``"22:00-06:00"`` or
  ``"22:00-06:00, 12:00-13:30"``; empty: armed all day;
- ``motion.armed_hours.<camera>``: one camera's own hours, which win over the ones for all;
- ``motion.timezone``: the site's IANA time zone the hours are read in (empty: the hub's own).

A camera's motion alerts must also be on (``cameras.motion_alerts``, or ``motion_alerts`` under
its ``[[cameras]]`` entry of the hub's config file, which wins).
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

AWAY_KEY = "motion.away"
ARMED_HOURS_KEY = "motion.armed_hours"
TIMEZONE_KEY = "motion.timezone"
PREFIX = "motion."
FACES_PREFIX = "faces."  # the armed hours of unknown-face alerts: faces.armed_hours[.<camera>]
ARMED_HOURS = "armed_hours"
# a link that plays a motion event starts this long before it, so the first movement is seen
# (the events page, the API's "play" and the alert email's link alike)
PLAY_PREROLL = dt.timedelta(seconds=2)
MAX_RANGES = 12
MAX_TZ_NAME = 64
_RANGE = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})")
_SEPARATORS = re.compile(r"\s*[,;]\s*")

Minutes = tuple[int, int]  # [start, end) in minutes after midnight; end < start wraps midnight


class ScheduleError(ValueError):
    """Armed hours or a time zone that cannot be read; the message says what is wrong."""


def armed_hours_key(camera: str | None, prefix: str = PREFIX) -> str:
    """Return the settings key of a camera's armed hours (None: the hours of every camera)."""
    key = f"{prefix}{ARMED_HOURS}"
    return key if camera is None else f"{key}.{camera}"


def parse_armed_hours(text: str) -> tuple[Minutes, ...]:
    """Read ``"22:00-06:00, 12:00-13:30"`` into minute ranges; ``""`` means all day."""
    text = text.strip()
    if not text:
        return ()
    ranges = []
    for part in _SEPARATORS.split(text):
        match = _RANGE.fullmatch(part)
        if not match:
            raise ScheduleError(f"{part!r} is not a range of hours like 22:00-06:00")
        h1, m1, h2, m2 = (int(group) for group in match.groups())
        if h1 > 24 or h2 > 24 or m1 > 59 or m2 > 59 or (h1 == 24 and m1) or (h2 == 24 and m2):
            raise ScheduleError(f"{part!r}: hours run from 00:00 to 24:00")
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if start == end:
            raise ScheduleError(f"{part!r} is empty: the end must differ from the start")
        ranges.append((start, end))
    if len(ranges) > MAX_RANGES:
        raise ScheduleError(f"at most {MAX_RANGES} ranges")
    return tuple(ranges)


def format_armed_hours(ranges: Sequence[Minutes]) -> str:
    """Write minute ranges back as ``"22:00-06:00, 12:00-13:30"`` (the stored form)."""
    return ", ".join(f"{a // 60:02d}:{a % 60:02d}-{b // 60:02d}:{b % 60:02d}" for a, b in ranges)


def parse_timezone(name: str) -> dt.tzinfo | None:
    """Return the IANA zone called ``name`` (None for an empty name: the hub's own zone)."""
    name = name.strip()
    if not name:
        return None
    if len(name) > MAX_TZ_NAME:
        raise ScheduleError(f"unknown time zone (longer than {MAX_TZ_NAME} characters)")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleError(f"unknown time zone {name!r} (an IANA name such as "
                            "Europe/Paris)") from None


def in_ranges(ranges: Sequence[Minutes], minute: int) -> bool:
    """Tell whether a minute of the day falls in one of ``ranges`` (no ranges: all day)."""
    if not ranges:
        return True
    for start, end in ranges:
        if start < end and start <= minute < end:
            return True
        if start > end and (minute >= start or minute < end):  # across midnight
            return True
    return False


@dataclass(frozen=True)
class MotionSchedule:
    """The motion-alert settings rows, read once per poll."""

    away: bool = False
    all_hours: tuple[Minutes, ...] = ()
    camera_hours: Mapping[str, tuple[Minutes, ...]] | None = None
    timezone: dt.tzinfo | None = None  # None: the hub's local zone

    def armed(self, camera: str, at: dt.datetime) -> bool:
        """Tell whether ``camera``'s motion alerts are armed at ``at`` (an aware time)."""
        if self.away:
            return True
        hours = (self.camera_hours or {}).get(camera, self.all_hours)
        local = at.astimezone(self.timezone) if self.timezone else at.astimezone()
        return in_ranges(hours, local.hour * 60 + local.minute)


def schedule_from_settings(rows: Mapping[str, str], prefix: str = PREFIX,
                           ) -> tuple[MotionSchedule, list[str]]:
    """Build the schedule from the settings rows: the armed hours under ``prefix`` (``motion.``
    or ``faces.``), the site's ``motion.away`` and ``motion.timezone``; also return what was
    unreadable (a row the web app did not write: it is ignored, so a bad row never disarms
    everything)."""
    problems: list[str] = []
    hours_key = armed_hours_key(None, prefix)

    def hours(key: str) -> tuple[Minutes, ...] | None:
        try:
            return parse_armed_hours(rows.get(key, ""))
        except ScheduleError as exc:
            problems.append(f"{key}: {exc}")
            return None

    cameras = {}
    for key in rows:
        if key.startswith(hours_key + ".") and rows[key].strip():  # empty: the hours of all
            value = hours(key)
            if value is not None:
                cameras[key[len(hours_key) + 1:]] = value
    try:
        zone = parse_timezone(rows.get(TIMEZONE_KEY, ""))
    except ScheduleError as exc:
        problems.append(f"{TIMEZONE_KEY}: {exc}")
        zone = None
    schedule = MotionSchedule(away=rows.get(AWAY_KEY, "") == "1", all_hours=hours(hours_key) or (),
                              camera_hours=cameras, timezone=zone)
    return schedule, problems
