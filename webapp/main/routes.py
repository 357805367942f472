"""Views of the main blueprint."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from flask import render_template
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from nvrlib.catalog.models import Camera, Segment

from ..extensions import db
from . import bp


@dataclass(frozen=True)
class CameraRow:
    """One line of the dashboard."""

    name: str
    location: str
    enabled: bool
    last_seen: dt.datetime | None
    last_segment_end: dt.datetime | None


def camera_rows() -> list[CameraRow]:
    """Return every camera of the catalog with the end of its newest segment."""
    # Correlated and ordered by start_time so each camera costs one probe of
    # ix_segments_camera_start, however many segments the catalog holds.
    last_end = (select(Segment.end_time)
                .where(Segment.camera_id == Camera.id, Segment.status == "ok")
                .order_by(Segment.start_time.desc()).limit(1)
                .correlate(Camera).scalar_subquery())
    rows = db.session.execute(
        select(Camera.name, Camera.location, Camera.enabled, Camera.last_seen, last_end)
        .order_by(Camera.name))
    return [CameraRow(*row) for row in rows]


@bp.route("/")
def index() -> ResponseReturnValue:
    """Show the dashboard: the cameras and when each last recorded."""
    return render_template("main/index.html", cameras=camera_rows())
