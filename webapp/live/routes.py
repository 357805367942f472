"""Views of the live blueprint: the camera grid, one camera, and the hub's live HLS files."""

from __future__ import annotations

from pathlib import Path

from flask import Response, abort, render_template
from flask.typing import ResponseReturnValue

from .. import cameras_service as cameras
from .. import hub_storage
from ..security import current_user_is_admin
from . import bp
from .files import NotLive, mark_wanted, read_playlist, read_segment

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
SEGMENT_TYPE = "video/mp2t"
# A piece's name never comes back with other content (run id + number), so the browser may
# keep it while it plays; private: it is behind a login.
SEGMENT_CACHE = "private, max-age=60"


@bp.context_processor
def _formatters() -> dict[str, object]:
    return {"human_bitrate": cameras.human_bitrate, "human_duration": cameras.human_duration}


@bp.route("/")
def index() -> ResponseReturnValue:
    """Show every camera that records (not the rejected ones) live, in a grid."""
    shown = [c for c in cameras.list_cameras() if c.approval != "rejected"]
    return render_template("live/index.html", cameras=shown)


@bp.route("/<camera>")
def camera(camera: str) -> ResponseReturnValue:
    """Show one camera live, large, with its status."""
    try:
        view = cameras.get_camera(camera)
    except cameras.UnknownCamera as exc:
        abort(404, str(exc))
    return render_template("live/camera.html", camera=view, is_admin=current_user_is_admin())


def _live_storage(camera: str) -> Path:
    """The storage of the hub that records ``camera``: its live files are there (503 if unreachable)."""
    hub_id = cameras.camera_hub(camera)
    if hub_id is None:
        raise NotLive(f"no camera named {camera!r}")
    try:
        return hub_storage.storage_root(hub_id)
    except hub_storage.StorageUnreachable as exc:
        abort(503, str(exc))


@bp.route("/<camera>/live.m3u8")
def playlist(camera: str) -> ResponseReturnValue:
    """Ask the hub for a camera's live view, and serve its playlist once the hub writes it.

    The player re-fetches the playlist every second or so, which keeps the hub's live view of
    the camera running; the first fetches may answer 404 while the hub starts it.
    """
    try:
        storage = _live_storage(camera)  # no folders for names that are not cameras
        mark_wanted(storage, camera)
        data = read_playlist(storage, camera)
    except NotLive as exc:
        abort(404, str(exc))
    response = Response(data, mimetype=PLAYLIST_TYPE)
    response.headers["Cache-Control"] = "no-cache"  # it changes every second
    return response


@bp.route("/<camera>/<segment>")
def segment(camera: str, segment: str) -> ResponseReturnValue:
    """Serve one ~1-second MPEG-TS piece of a camera's live stream."""
    try:
        data = read_segment(_live_storage(camera), camera, segment)
    except NotLive as exc:
        abort(404, str(exc))
    response = Response(data, mimetype=SEGMENT_TYPE)
    response.headers["Cache-Control"] = SEGMENT_CACHE
    return response
