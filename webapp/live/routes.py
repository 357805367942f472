"""Views of the live blueprint: the camera grid, one camera, its fMP4 stream and HLS files."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from flask import Response, abort, current_app, render_template, request
from flask.typing import ResponseReturnValue

from .. import cameras_service as cameras
from .. import hub_storage
from ..security import current_user_is_admin
from . import bp
from .files import NotLive, mark_wanted, read_playlist, read_segment
from .stream import SEND_BUFFER, feeds_of

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
SEGMENT_TYPE = "video/mp2t"
# A piece's name never comes back with other content (run id + number), so the browser may
# keep it while it plays; private: it is behind a login.
SEGMENT_CACHE = "private, max-age=60"
STREAM_TYPE = "video/mp4"
WALL_TYPE = "application/octet-stream"
WALL_MAX = 16  # cameras in one wall stream


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


@bp.route("/_wall")
def wall() -> ResponseReturnValue:
    """Stream up to 16 cameras live over one connection (``?camera=a&camera=b``) for the grid.

    A browser opens at most 6 connections to a site over HTTP/1.1: a stream per camera would
    starve the page beyond 5. The body is a sequence of frames: a 4-byte length, the camera's
    index in the query, a byte that is 1 when the frame starts with an init segment (the
    player starts that camera over), then that camera's fMP4 bytes (docs/design/live.md).
    """
    names = request.args.getlist("camera")
    if not 1 <= len(names) <= WALL_MAX:
        abort(400, f"camera: give 1 to {WALL_MAX} cameras (got {len(names)})")
    try:
        sources = [(_live_storage(name), name) for name in names]  # each camera's hub's storage
        for storage, name in sources:
            mark_wanted(storage, name)
    except NotLive as exc:
        abort(404, str(exc))
    return _streaming(feeds_of(current_app).stream_wall(sources, _backlog()), WALL_TYPE)


def _backlog() -> Callable[[], int]:
    """How many bytes of this response wait unsent (0 outside waitress); caps the socket's share."""
    limit = request.environ.get("nvr.limit_send_buffer")
    if limit is not None:
        limit(SEND_BUFFER)
    return request.environ.get("nvr.unsent_bytes", lambda: 0)


def _streaming(body: Iterator[bytes], mimetype: str) -> Response:
    response = Response(body, mimetype=mimetype, direct_passthrough=True)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"  # a reverse proxy must pass frames at once
    return response


@bp.route("/<camera>/live.mp4")
def stream(camera: str) -> ResponseReturnValue:
    """Stream a camera live as fragmented MP4 (one frame per fragment) for the MSE player.

    The body starts with the init segment and the newest group of pictures, then carries each
    frame as the hub writes it; it ends when the hub's live view restarts or stops, after
    nothing came for 15 s, or after 5 minutes (the player reconnects; login is checked again).
    """
    try:
        storage = _live_storage(camera)
        mark_wanted(storage, camera)  # the hub starts its live view now, not at the next mark
    except NotLive as exc:
        abort(404, str(exc))
    return _streaming(feeds_of(current_app).stream(storage, camera, _backlog()), STREAM_TYPE)
