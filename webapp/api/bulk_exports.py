"""API endpoints of the exports beyond one MP4 (docs/api.md): several cameras as a ZIP of
MP4s, and a timelapse of one camera. They share the export slots of the one-MP4 export."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from pathlib import Path

import flask
from flask import current_app, request
from flask.typing import ResponseReturnValue
from flask_login import current_user

from .. import catalog_queries, exports, hub_storage, media
from ..catalog_queries import iso_utc
from ..recordings.params import ParamError, int_param, parse_tz, time_range
from ..security import api_error
from ..timeline.params import camera_list
from . import bp
from .recordings import DEFAULT_EXPORT_TIMEOUT, _check_known, _export_slots

logger = logging.getLogger(__name__)

ZIP_PARAMS = frozenset({"cameras", "start", "end", "tz"})
TIMELAPSE_PARAMS = frozenset({"start", "end", "tz", "speed"})
MAX_ZIP_CAMERAS = 16


def _busy() -> flask.Response:
    response = api_error(503, "too many exports are running; try again in a minute")
    response.headers["Retry-After"] = "30"
    return response


def _timeout() -> float:
    return float(current_app.config.get("EXPORT_TIMEOUT", DEFAULT_EXPORT_TIMEOUT))


@bp.get("/export.zip")
def export_zip() -> ResponseReturnValue:
    """Download ``[start, end)`` of several cameras as a ZIP of MP4s, stream-copied."""
    _check_known(request.args, ZIP_PARAMS)
    cameras = camera_list(request.args)
    if not cameras:
        raise ParamError("cameras", "required (comma-separated camera names)")
    if len(cameras) > MAX_ZIP_CAMERAS:
        raise ParamError("cameras", f"at most {MAX_ZIP_CAMERAS} cameras")
    start, end = time_range(request.args, parse_tz(request.args.get("tz")))
    for name in cameras:
        if catalog_queries.camera_by_name(name) is None:
            return api_error(404, f"no camera named {name!r}")
    slots = _export_slots()
    if not slots.acquire(blocking=False):
        return _busy()
    workdir = media.export_workdir(current_app.config["STORAGE_ROOT"])
    try:
        members = _remux_cameras(cameras, start, end, workdir)
    except media.ExportFailed as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        return api_error(500, f"export failed: {exc}")
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    finally:
        slots.release()
    if not members:
        shutil.rmtree(workdir, ignore_errors=True)
        return api_error(404, f"no footage of {', '.join(cameras)} between {iso_utc(start)} "
                              f"and {iso_utc(end)}")
    name = f"export_{media.export_filename('cameras', str(len(members)), start, end)[:-4]}.zip"
    logger.info("%s exported %s (%d cameras)", current_user.username, name, len(members))
    response = current_app.response_class(exports.stream_zip(members, workdir),
                                          mimetype="application/zip")
    # A client gone before the first byte: the generator never ran, so its cleanup neither.
    response.call_on_close(lambda: shutil.rmtree(workdir, ignore_errors=True))
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _plan(camera: str, start: dt.datetime, end: dt.datetime) -> media.ExportPlan | None:
    """Plan the export of a camera's footage, its files found in their hubs' storage."""
    rows = catalog_queries.segments_between(camera, start, end)
    files, unreachable = hub_storage.locate_segments(rows)
    for exc in unreachable:  # the rest of the range still exports
        logger.warning("export of %s leaves out footage: %s", camera, exc)
    return media.plan_export(files, start, end)


def _remux_cameras(cameras: tuple[str, ...], start: dt.datetime, end: dt.datetime,
                   workdir: Path) -> list[exports.ZipMember]:
    """Remux each camera's footage into its own folder of ``workdir``; skip cameras without."""
    members = []
    for index, camera in enumerate(cameras):
        plan = _plan(camera, start, end)
        if plan is None:
            continue
        folder = workdir / f"{index:02d}"
        folder.mkdir()
        output = media.remux(plan, folder, _timeout())
        members.append(exports.ZipMember(
            media.export_filename(camera, plan.location, plan.start, plan.end), output))
    return members


@bp.get("/timelapse/<camera>.mp4")
def timelapse(camera: str) -> ResponseReturnValue:
    """Download a timelapse of ``[start, end)``: keyframes only, ``speed`` times real time."""
    _check_known(request.args, TIMELAPSE_PARAMS)
    start, end = time_range(request.args, parse_tz(request.args.get("tz")))
    speed = int_param(request.args, "speed", exports.DEFAULT_SPEED, exports.MIN_SPEED,
                      exports.MAX_SPEED)
    if catalog_queries.camera_by_name(camera) is None:
        return api_error(404, f"no camera named {camera!r}")
    plan = _plan(camera, start, end)
    if plan is None:
        return api_error(404, f"no footage of {camera} between {iso_utc(start)} and "
                              f"{iso_utc(end)}")
    slots = _export_slots()
    if not slots.acquire(blocking=False):
        return _busy()
    workdir = media.export_workdir(current_app.config["STORAGE_ROOT"])
    try:
        output = exports.timelapse(plan, workdir, speed, _timeout())
        handle = open(output, "rb")  # noqa: SIM115 (closed by the response)
    except media.ExportFailed as exc:
        return api_error(500, f"timelapse failed: {exc}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        slots.release()
    name = media.export_filename(camera, plan.location, plan.start, plan.end)
    name = f"{name[:-4]}_timelapse-x{speed}.mp4"
    response = flask.send_file(handle, mimetype="video/mp4", as_attachment=True,
                               download_name=name)
    return response
