"""Reading the timeline's query parameters: a range, a camera list and a bucket size."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass

from nvrlib.names import MAX_NAME_LENGTH

from ..recordings.params import MAX_RANGE, ParamError, optional_seconds, parse_tz, time_range

MAX_CAMERAS = 64
MAX_BUCKETS = 5000  # motion density buckets per camera: more than any screen has pixels
DEFAULT_BUCKETS = 720


@dataclass(frozen=True)
class TimelineQuery:
    """A validated timeline request."""

    start: dt.datetime
    end: dt.datetime
    cameras: tuple[str, ...] | None  # None: every camera
    resolution: float  # seconds per motion-density bucket


def camera_list(args: Mapping[str, str], name: str = "cameras") -> tuple[str, ...] | None:
    """Return the comma-separated camera names of parameter ``name`` (None when absent)."""
    value = args.get(name, "").strip()
    if not value:
        return None
    names = tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
    if len(names) > MAX_CAMERAS:
        raise ParamError(name, f"at most {MAX_CAMERAS} cameras")
    if any(len(part) > MAX_NAME_LENGTH for part in names):
        raise ParamError(name, f"a camera name is at most {MAX_NAME_LENGTH} characters")
    return names or None


def resolution_of(args: Mapping[str, str], span: dt.timedelta) -> float:
    """Return the bucket size in seconds: ``resolution``, or the span cut in 720 buckets."""
    seconds = span.total_seconds()
    value = optional_seconds(args, "resolution")
    if value is None:
        return max(1.0, math.ceil(seconds / DEFAULT_BUCKETS))
    if value < 1:
        raise ParamError("resolution", "must be at least 1 second")
    if seconds / value > MAX_BUCKETS:
        raise ParamError("resolution", f"too fine: at most {MAX_BUCKETS} buckets "
                                       f"(at least {math.ceil(seconds / MAX_BUCKETS)} s here)")
    return value


def timeline_query(args: Mapping[str, str]) -> TimelineQuery:
    """Validate ``start``, ``end`` (default: start + 24 h), ``cameras``, ``resolution``, ``tz``."""
    tz = parse_tz(args.get("tz"))
    start, end = time_range(args, tz, MAX_RANGE)
    return TimelineQuery(start, end, camera_list(args), resolution_of(args, end - start))
