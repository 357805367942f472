"""Views of the timeline blueprint: the timeline page (with its grid of players) and pictures."""

from __future__ import annotations

import datetime as dt

from flask import abort, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import func, select

from nvrlib.catalog.models import Segment

from .. import catalog_queries, faces_settings
from ..catalog_queries import iso_utc
from ..extensions import db
from ..recordings.params import ParamError, optional_time, parse_tz
from ..security import now
from . import bp
from .params import camera_list

MAX_PLAYERS = 9  # the grid plays at most this many cameras at once
DEFAULT_PLAYERS = 4
# Times in URLs carry milliseconds, and the page asks for whole seconds: a moment a little
# before a segment's start still gets that segment's picture.
PICTURE_WINDOW = dt.timedelta(seconds=2)
PICTURE_CACHE = "private, max-age=300"  # which segment holds a moment never changes for long


FIRST_VIEW = dt.timedelta(hours=1)  # what the page shows first: the last hour


def _first_footage_within(span: dt.timedelta) -> dt.datetime | None:
    """The start of the oldest footage of the last ``span``, when there is none before it."""
    since = now() - span
    older = db.session.scalar(select(Segment.id).where(Segment.start_time < since).limit(1))
    if older is not None:
        return None
    return db.session.scalar(select(func.min(Segment.start_time))
                             .where(Segment.start_time >= since))


@bp.route("/")
def index() -> ResponseReturnValue:
    """Show every camera on one zoomable timeline, with a grid of players kept in step."""
    cameras = catalog_queries.camera_names()
    try:
        tz = parse_tz(request.args.get("tz"))
        at = optional_time(request.args, "at", tz)
        chosen = camera_list(request.args)
    except ParamError as exc:
        abort(400, str(exc))
    unknown = [name for name in chosen or () if name not in cameras]
    if unknown:
        abort(404, f"There is no camera named {unknown[0]!r}.")
    playing = list(chosen or cameras[:DEFAULT_PLAYERS])[:MAX_PLAYERS]
    context = {
        "cameras": cameras, "playing": playing, "max_players": MAX_PLAYERS,
        "at": iso_utc(at) if at else "", "now": iso_utc(now()),
        # with less than the first view's hour of footage, the view opens on what there is
        "first": iso_utc(first) if (first := _first_footage_within(FIRST_VIEW)) else "",
        "api_url": url_for("api.timeline"),
        "playlist_url": url_for("api.playlist", camera="CAMERA"),
        "picture_url": url_for("timeline.picture", camera="CAMERA"),
        "export_url": url_for("api.export_zip"),
        "timelapse_url": url_for("api.timelapse", camera="CAMERA"),
        "faces_cameras": faces_settings.active_cameras(),
    }
    return render_template("timeline/index.html", **context)


@bp.route("/<camera>/picture.jpg")
def picture(camera: str) -> ResponseReturnValue:
    """Redirect to the thumbnail of ``camera``'s segment at ``at`` (or starting within 2 s)."""
    try:
        at = optional_time(request.args, "at", parse_tz(request.args.get("tz")))
    except ParamError as exc:
        abort(400, str(exc))
    if at is None:
        abort(400, "at: required (an ISO-8601 time)")
    row = catalog_queries.first_segment(camera, at, at + PICTURE_WINDOW)
    if row is None:
        abort(404, f"No footage of {camera} at {iso_utc(at)}.")
    response = redirect(url_for("recordings.thumbnail", segment_id=row.id))
    response.headers["Cache-Control"] = PICTURE_CACHE
    return response

