"""API endpoints for recordings, playback playlists and exports (see docs/api.md).

Viewers may use all of them: watching and exporting are viewer rights.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import flask
from flask import current_app, jsonify, request, send_file, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from werkzeug.wsgi import wrap_file

from nvrlib.catalog.models import Camera

from .. import catalog_queries, media
from ..catalog_queries import SegmentRow, iso_utc
from ..recordings.params import (
    MAX_OFFSET, MAX_RANGE, ParamError, int_param, page_size, parse_tz, search_query, time_range,
)
from ..security import api_error
from . import bp

logger = logging.getLogger(__name__)

SEARCH_PARAMS = frozenset({"camera", "location", "start", "end", "min_duration", "max_duration",
                           "limit", "offset", "sort", "order", "status", "tz", "motion"})
RANGE_PARAMS = frozenset({"start", "end", "tz"})
PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
SEGMENT_CACHE = "private, max-age=3600"  # a segment's file never changes once cataloged
EXPORT_SLOTS_KEY = "nvr_export_slots"
DEFAULT_EXPORT_CONCURRENCY = 2  # app.config EXPORT_CONCURRENCY overrides
DEFAULT_EXPORT_TIMEOUT = 900.0  # seconds; app.config EXPORT_TIMEOUT overrides


def _check_known(args: Mapping[str, str], known: Iterable[str]) -> None:
    # A misspelt filter ("from=" for "start=") must not silently widen the answer.
    unknown = sorted(set(args) - set(known))
    if unknown:
        raise ParamError(unknown[0], "unknown parameter")


def recording_json(row: SegmentRow) -> dict[str, Any]:
    """Return the API's JSON object of a recording (one segment)."""
    return {"id": row.id, "camera": row.camera, "location": row.location,
            "start": iso_utc(row.start), "end": iso_utc(row.end),
            "duration": round(row.duration, 3), "size": row.size, "status": row.status,
            "backfilled": row.backfilled,
            "file": url_for("api.recording_file", segment_id=row.id)}


@bp.get("/recordings")
def list_recordings() -> ResponseReturnValue:
    """Search recordings: a JSON list; a ``Link: <...>; rel="next"`` header when more follow."""
    try:
        _check_known(request.args, SEARCH_PARAMS)
        limit = page_size(request.args)
        offset = int_param(request.args, "offset", 0, 0, MAX_OFFSET)
        query = search_query(request.args, offset, limit)
    except ParamError as exc:
        return api_error(400, str(exc))
    page = catalog_queries.search(query.filters, query.sort, query.order, query.limit,
                                  query.offset)
    response = jsonify([recording_json(row) for row in page.rows])
    if page.has_next:
        args = {**request.args.to_dict(), "offset": str(page.offset + page.limit)}
        response.headers["Link"] = f'<{url_for("api.list_recordings", **args)}>; rel="next"'
    return response


@bp.get("/recordings/<int:segment_id>/file")
def recording_file(segment_id: int) -> ResponseReturnValue:
    """Serve a segment's MPEG-TS file by catalog id, with HTTP Range support."""
    row = catalog_queries.segment(segment_id)
    if row is None:
        return api_error(404, f"no recording with id {segment_id}")
    try:
        path = media.segment_file(current_app.config["STORAGE_ROOT"], row.path)
    except media.SegmentFileMissing:
        return api_error(404, f"the file of recording {segment_id} is not on disk")
    response = send_file(path, mimetype="video/mp2t", conditional=True, etag=True)
    response.headers["Cache-Control"] = SEGMENT_CACHE
    return response


@dataclass(frozen=True)
class RangeRequest:
    """A validated playlist or export request: the camera and the time range."""

    camera: Camera
    start: dt.datetime
    end: dt.datetime


def _range_request(camera: str, default_span: dt.timedelta | None) -> RangeRequest | flask.Response:
    """Validate the range parameters and the camera of a playlist or export request."""
    try:
        _check_known(request.args, RANGE_PARAMS)
        tz = parse_tz(request.args.get("tz"))
        start, end = time_range(request.args, tz, default_span)
    except ParamError as exc:
        return api_error(400, str(exc))
    row = catalog_queries.camera_by_name(camera)
    if row is None:
        return api_error(404, f"no camera named {camera!r}")
    return RangeRequest(row, start, end)


def _no_footage(wanted: RangeRequest) -> flask.Response:
    return api_error(404, f"no footage of {wanted.camera.name} between {iso_utc(wanted.start)} "
                          f"and {iso_utc(wanted.end)}")


@bp.get("/playback/<camera>.m3u8")
def playlist(camera: str) -> ResponseReturnValue:
    """Return an HLS VOD playlist of a camera's footage in ``[start, end)``."""
    wanted = _range_request(camera, default_span=MAX_RANGE)
    if isinstance(wanted, flask.Response):
        return wanted
    spans = catalog_queries.segment_spans(camera, wanted.start, wanted.end)
    if not spans:
        return _no_footage(wanted)
    # Relative to /api/v1/playback/: each segment is /api/v1/recordings/<id>/file.
    body = media.hls_playlist(spans, lambda segment_id: f"../recordings/{segment_id}/file")
    return current_app.response_class(body, mimetype=PLAYLIST_TYPE)


def _export_slots() -> threading.BoundedSemaphore:
    slots = current_app.extensions.get(EXPORT_SLOTS_KEY)
    if slots is None:
        limit = int(current_app.config.get("EXPORT_CONCURRENCY", DEFAULT_EXPORT_CONCURRENCY))
        slots = current_app.extensions.setdefault(EXPORT_SLOTS_KEY,
                                                  threading.BoundedSemaphore(limit))
    return slots


@bp.get("/export/<camera>.mp4")
def export(camera: str) -> ResponseReturnValue:
    """Download a camera's footage in ``[start, end)`` as one MP4, remuxed without re-encoding."""
    wanted = _range_request(camera, default_span=None)
    if isinstance(wanted, flask.Response):
        return wanted
    rows = catalog_queries.segments_between(camera, wanted.start, wanted.end)
    if not rows:
        return _no_footage(wanted)
    slots = _export_slots()
    if not slots.acquire(blocking=False):
        response = api_error(503, "too many exports are running; try again in a minute")
        response.headers["Retry-After"] = "30"
        return response
    try:
        return _run_export(wanted, rows)
    finally:
        slots.release()


def _run_export(wanted: RangeRequest, rows: list[SegmentRow]) -> ResponseReturnValue:
    """Remux ``rows`` into a temp folder and answer with the MP4 (the folder is gone by then)."""
    root = current_app.config["STORAGE_ROOT"]
    timeout = float(current_app.config.get("EXPORT_TIMEOUT", DEFAULT_EXPORT_TIMEOUT))
    camera = wanted.camera
    workdir = media.export_workdir(root)
    try:
        plan = media.plan_export(root, rows, wanted.start, wanted.end)
        if plan is None:
            return api_error(404, f"the files of {camera.name}'s footage in that range are "
                                  "not on disk")
        try:
            output = media.remux(plan, workdir, timeout)
        except media.ExportFailed as exc:
            return api_error(500, f"export failed: {exc}")
        # Open, then delete the folder at once: the open file stays readable until the response
        # closes it, and nothing is left on disk even if the client goes away mid-download.
        handle = open(output, "rb")  # noqa: SIM115 (closed by the response)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    size = os.fstat(handle.fileno()).st_size
    name = media.export_filename(camera.name, plan.location or camera.location, plan.start,
                                 plan.end)
    logger.info("%s exported %s (%d segments, %d bytes)", current_user.username, name,
                len(plan.parts), size)
    response = current_app.response_class(wrap_file(request.environ, handle),
                                          mimetype="video/mp4", direct_passthrough=True)
    response.content_length = size
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
