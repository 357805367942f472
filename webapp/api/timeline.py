"""API endpoint of the timeline's data (docs/api.md, "Timeline")."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from flask.typing import ResponseReturnValue

from .. import catalog_queries
from ..catalog_queries import Interval, iso_utc
from ..recordings.params import ParamError
from ..security import api_error, now
from ..timeline import queries
from ..timeline.params import timeline_query
from . import bp

TIMELINE_PARAMS = frozenset({"start", "end", "cameras", "resolution", "tz"})


def _interval_json(interval: Interval) -> dict[str, str]:
    return {"start": iso_utc(interval.start), "end": iso_utc(interval.end)}


def camera_timeline_json(timeline: queries.CameraTimeline) -> dict[str, Any]:
    """Return the API's JSON object of one camera's timeline."""
    return {
        "camera": timeline.camera,
        "live": timeline.live,
        "footage": [{**_interval_json(span), "live": span.live,
                     "first_segment": span.first_segment} for span in timeline.footage],
        "backfilled": [_interval_json(interval) for interval in timeline.backfilled],
        "gaps": [{**_interval_json(gap), "reasons": list(gap.reasons),
                  "reason_text": gap.label} for gap in timeline.gaps],
        "motion": {
            "counts": timeline.motion_counts,
            "events": [{"id": mark.id, "start": iso_utc(mark.start),
                        "end": iso_utc(mark.end) if mark.end else None,
                        "score": round(mark.score, 4), "has_snapshot": mark.has_snapshot,
                        "end_lost": mark.end_lost}
                       for mark in timeline.motion],
        },
        "faces": [{"id": mark.id, "time": iso_utc(mark.start), "person": mark.person,
                   "person_id": mark.person_id} for mark in timeline.faces],
    }


@bp.get("/timeline")
def timeline() -> ResponseReturnValue:
    """Return each camera's footage spans, gaps, back-filled spans and motion in a range."""
    unknown = sorted(set(request.args) - TIMELINE_PARAMS)
    if unknown:
        raise ParamError(unknown[0], "unknown parameter")
    query = timeline_query(request.args)
    names = list(query.cameras) if query.cameras else catalog_queries.camera_names()
    current = now()
    rows = queries.timelines(names, query.start, query.end, query.resolution, current)
    missing = sorted(set(names) - {row.camera for row in rows})
    if query.cameras and missing:
        return api_error(404, f"no camera named {missing[0]!r}")
    return jsonify({
        "start": iso_utc(query.start), "end": iso_utc(query.end), "now": iso_utc(current),
        "resolution": query.resolution,
        "cameras": [camera_timeline_json(row) for row in rows],
    })
