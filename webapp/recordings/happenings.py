"""The Recordings page's first view: what happened, not which files exist.

Continuous footage is shown as spans (start to stop, length, a picture), with the motion
events in the same range (snapshots when the detector kept one). The raw 10-s files stay one
click away (``view=files``) and in the API (``GET /api/v1/recordings``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import catalog_queries, motion_service
from ..timeline import queries
from .params import MAX_RANGE, ParamError, optional_time, parse_tz, text_param

DEFAULT_SPAN = dt.timedelta(hours=24)  # no range asked: the last day
# Parameters that only the file list understands: a search with one of them lists files.
FILE_PARAMS = frozenset({"view", "location", "min_duration", "max_duration", "sort", "order",
                         "page", "status", "motion"})
MAX_MOTION_ROWS = 200


@dataclass(frozen=True)
class FootageRow:
    """One span of continuous footage of one camera."""

    camera: str
    span: queries.Span


@dataclass(frozen=True)
class MotionRow:
    """One motion event of one camera."""

    camera: str
    mark: queries.MotionMark
    pictured: bool = True  # a picture of it exists: a snapshot, or a saved segment at its start


def _motion_row(timeline: queries.CameraTimeline, mark: queries.MotionMark) -> MotionRow:
    """A motion event; one that began in the segment still being written has no picture yet."""
    writing = timeline.writing_since
    return MotionRow(timeline.camera, mark,
                     mark.has_snapshot or writing is None or mark.start < writing)


def wants_files(args: Mapping[str, str]) -> bool:
    """Tell whether the request asks for the raw file list rather than what happened."""
    if args.get("view", "").strip() == "files":
        return True
    return any(args.get(name, "").strip() for name in FILE_PARAMS - {"view"})


def happenings_range(args: Mapping[str, str], current: dt.datetime,
                     ) -> tuple[dt.datetime, dt.datetime]:
    """Return the range to show: ``start``/``end`` (in ``tz``), by default the last 24 h."""
    tz = parse_tz(args.get("tz"))
    start = optional_time(args, "start", tz)
    end = optional_time(args, "end", tz)
    if start is None and end is None:
        return current - DEFAULT_SPAN, current
    if start is None:
        start = end - DEFAULT_SPAN  # type: ignore[operator]
    if end is None:
        end = min(start + DEFAULT_SPAN, max(current, start + dt.timedelta(seconds=1)))
    if end <= start:
        raise ParamError("end", "must be after start")
    if end - start > MAX_RANGE:
        raise ParamError("end", "the range is longer than 24 h")
    return start, end


def happenings(args: Mapping[str, str], current: dt.datetime) -> dict[str, Any]:
    """Return the template context of the footage spans and motion events in the range."""
    start, end = happenings_range(args, current)
    camera = text_param(args, "camera", 64, "a camera name")
    names = [camera] if camera else catalog_queries.camera_names()
    rows = queries.timelines(names, start, end, max(1.0, (end - start).total_seconds()), current)
    footage = sorted((FootageRow(row.camera, span) for row in rows for span in row.footage),
                     key=lambda item: item.span.start, reverse=True)
    motion = sorted((_motion_row(row, mark) for row in rows for mark in row.motion),
                    key=lambda item: item.mark.start, reverse=True)
    return {"start": start, "end": end, "footage": footage,
            "snapshot_url": motion_service.snapshot_url, "motion_play_url": motion_service.play_url,
            "motion": motion[:MAX_MOTION_ROWS], "motion_total": len(motion),
            "seconds": sum(item.span.seconds for item in footage)}
