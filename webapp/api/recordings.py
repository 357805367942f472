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

from .. import catalog_queries, hub_storage, media, stream_links
from ..catalog_queries import SegmentRow, iso_utc
from ..recordings.params import (
    MAX_OFFSET, MAX_RANGE, ParamError, int_param, page_size, parse_tz, search_query, time_range,
)
from ..security import api_error, now
from . import bp

logger = logging.getLogger(__name__)

SEARCH_PARAMS = frozenset({"camera", "location", "start", "end", "min_duration", "max_duration",
                           "limit", "offset", "sort", "order", "status", "tz", "motion"})
RANGE_PARAMS = frozenset({"start", "end", "tz"})
PLAYLIST_PARAMS = RANGE_PARAMS | {stream_links.PARAM}
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
    _check_known(request.args, SEARCH_PARAMS)
    limit = page_size(request.args)
    offset = int_param(request.args, "offset", 0, 0, MAX_OFFSET)
    query = search_query(request.args, offset, limit)
    page = catalog_queries.search(query.filters, query.sort, query.order, query.limit,
                                  query.offset)
    response = jsonify([recording_json(row) for row in page.rows])
    if page.has_next:
        args = {**request.args.to_dict(), "offset": str(page.offset + page.limit)}
        response.headers["Link"] = f'<{url_for("api.list_recordings", **args)}>; rel="next"'
    return response


@bp.get("/recordings/<int:segment_id>/segment.ts")
def recording_segment(segment_id: int) -> ResponseReturnValue:
    """Serve a segment's MPEG-TS file by catalog id, with HTTP Range support.

    The ``.ts`` lets players that judge a segment by its URL (ffmpeg 7+, mpv, VLC) take it.
    """
    return _serve_segment(segment_id)


@bp.get("/recordings/<int:segment_id>/file")
def recording_file(segment_id: int) -> ResponseReturnValue:
    """Serve a segment's file: the older URL of `recording_segment`, kept for existing clients."""
    return _serve_segment(segment_id)


def _serve_segment(segment_id: int) -> ResponseReturnValue:
    row = catalog_queries.segment(segment_id)
    grant = stream_links.current_grant()
    if grant is not None:
        # A stream link opens the segments of its camera and range only; an id it does not
        # open answers the same whether it exists or not.
        refusal = (stream_links.segment_refusal(grant, row.camera, row.start, row.end)
                   if row is not None else stream_links.scope_text(grant))
        if refusal is not None:
            return api_error(403, refusal)
    if row is None:
        return api_error(404, f"no recording with id {segment_id}")
    try:
        path = hub_storage.segment_path(row)
    except hub_storage.StorageUnreachable as exc:
        return _unreachable(exc)
    except media.SegmentFileMissing:
        return api_error(404, f"the file of recording {segment_id} is not on disk")
    response = send_file(path, mimetype="video/mp2t", conditional=True, etag=True)
    response.headers["Cache-Control"] = SEGMENT_CACHE
    return response


def _unreachable(exc: hub_storage.StorageUnreachable) -> flask.Response:
    """503: the footage is safe on its hub, but this web app cannot read that hub's storage."""
    response = api_error(503, str(exc))
    response.headers["Retry-After"] = "60"
    return response


@dataclass(frozen=True)
class RangeRequest:
    """A validated playlist or export request: the camera and the time range."""

    camera: Camera
    start: dt.datetime
    end: dt.datetime


def _range_request(camera: str, default_span: dt.timedelta | None,
                   known: frozenset[str] = RANGE_PARAMS) -> RangeRequest | flask.Response:
    """Validate the range parameters and the camera of a playlist or export request."""
    _check_known(request.args, known)
    tz = parse_tz(request.args.get("tz"))
    start, end = time_range(request.args, tz, default_span)
    grant = stream_links.current_grant()
    if grant is not None:  # checked before the camera: a link tells nothing of other cameras
        refusal = stream_links.playlist_refusal(grant, camera, start, end)
        if refusal is not None:
            return api_error(403, refusal)
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
    wanted = _range_request(camera, default_span=MAX_RANGE, known=PLAYLIST_PARAMS)
    if isinstance(wanted, flask.Response):
        return wanted
    spans = catalog_queries.segment_spans(camera, wanted.start, wanted.end)
    if not spans:
        return _no_footage(wanted)
    blocked = _all_unreachable(catalog_queries.segment_hubs(camera, wanted.start, wanted.end))
    if blocked is not None:
        return _unreachable(blocked)
    # Relative to /api/v1/playback/: each segment is /api/v1/recordings/<id>/segment.ts; a
    # stream link's token rides along, for players that send no header or cookie.
    token = stream_links.current_token()
    query = f"?{stream_links.PARAM}={token}" if token else ""
    body = media.hls_playlist(spans, lambda segment_id: f"../recordings/{segment_id}/segment.ts"
                                                        f"{query}")
    return current_app.response_class(body, mimetype=PLAYLIST_TYPE)


def _all_unreachable(hub_ids: list[str]) -> hub_storage.StorageUnreachable | None:
    """The first hub's error when none of ``hub_ids`` has a storage this web app reaches."""
    errors = []
    for hub_id in hub_ids:
        try:
            hub_storage.storage_root(hub_id)
            return None
        except hub_storage.StorageUnreachable as exc:
            errors.append(exc)
    return errors[0] if errors else None


@bp.post("/playback/<camera>/link")
def playback_link(camera: str) -> ResponseReturnValue:
    """Make a stream link: the playlist URL of ``[start, end)`` with a signed, expiring token."""
    wanted = _range_request(camera, default_span=MAX_RANGE)
    if isinstance(wanted, flask.Response):
        return wanted
    token, grant = stream_links.issue(current_user, wanted.camera.name, wanted.start, wanted.end,
                                      now())
    url = url_for("api.playlist", camera=grant.camera, start=iso_utc(grant.start),
                  end=iso_utc(grant.end), **{stream_links.PARAM: token}, _external=True)
    logger.info("%s made a stream link of %s from %s to %s", current_user.username, grant.camera,
                iso_utc(grant.start), iso_utc(grant.end))
    return jsonify(url=url, expires=iso_utc(grant.expires))


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
    timeout = float(current_app.config.get("EXPORT_TIMEOUT", DEFAULT_EXPORT_TIMEOUT))
    camera = wanted.camera
    files, unreachable = hub_storage.locate_segments(rows)
    if unreachable and not files:
        return _unreachable(unreachable[0])
    for exc in unreachable:  # the rest of the range still exports
        logger.warning("export of %s leaves out footage: %s", camera.name, exc)
    # on the footage's own disk (its hub's storage), as big as the export may be
    root = hub_storage.storage_root(files[0][0].hub_id) if files else current_app.config[
        "STORAGE_ROOT"]
    workdir = media.export_workdir(root)
    try:
        plan = media.plan_export(files, wanted.start, wanted.end)
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
