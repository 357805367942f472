"""Views of the main blueprint: the dashboard of every camera."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from flask import render_template
from flask.typing import ResponseReturnValue
from sqlalchemy import func, select

from nvrlib.catalog.models import Camera, MotionEvent, Segment

from .. import cameras_service
from ..extensions import db
from . import bp


@dataclass(frozen=True)
class CameraCard:
    """One camera on the dashboard: its status, its newest picture and its last motion."""

    camera: cameras_service.CameraView
    newest_segment_id: int | None  # its thumbnail is the camera's most recent picture
    last_motion: dt.datetime | None


def newest_segments() -> dict[str, int]:
    """The id of each camera's newest ``ok`` segment, by camera name."""
    # Correlated and ordered by start_time so each camera costs one probe of
    # ix_segments_camera_start, however many segments the catalog holds.
    newest = (select(Segment.id)
              .where(Segment.camera_id == Camera.id, Segment.status == "ok")
              .order_by(Segment.start_time.desc()).limit(1)
              .correlate(Camera).scalar_subquery())
    return {name: segment_id for name, segment_id in db.session.execute(select(Camera.name, newest))
            if segment_id is not None}


def last_motion() -> dict[str, dt.datetime]:
    """When each camera's newest motion event started, by camera name."""
    rows = db.session.execute(select(Camera.name, func.max(MotionEvent.start_time))
                              .join(MotionEvent, MotionEvent.camera_id == Camera.id)
                              .group_by(Camera.name))
    return {name: started for name, started in rows if started is not None}


def camera_cards() -> list[CameraCard]:
    """Every camera of the catalog, by name, as the dashboard shows it."""
    segments, motion = newest_segments(), last_motion()
    return [CameraCard(camera, segments.get(camera.name), motion.get(camera.name))
            for camera in cameras_service.list_cameras()]


@bp.route("/")
def index() -> ResponseReturnValue:
    """Show the dashboard: each camera's picture, state, last recording and last motion."""
    return render_template("main/index.html", cards=camera_cards())
