"""The hub's rolling live HLS on disk, asked for and found safely (docs/design/control.md).

While someone watches a camera, the hub that records it writes
``<its storage>/.live/<camera>/live.m3u8`` (webapp.hub_storage finds that storage) and
~1-second MPEG-TS pieces beside it, deleting the oldest as new ones come. "Someone watches"
means the web app touched ``.wanted`` in that folder less than 20 s ago (recorder/supervise/live.py),
which it does on every fetch of the playlist. No request path reaches the disk unchecked: the
camera name passes the hub's own validator, the piece's name a strict pattern, and the resolved
path must still lie in the camera's live folder.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import time
from pathlib import Path

from nvrlib.names import is_valid_camera_name

logger = logging.getLogger(__name__)

LIVE_DIR = ".live"  # recorder.store.storage.LIVE
PLAYLIST = "live.m3u8"  # recorder.supervise.ffmpeg.LIVE_PLAYLIST
WANTED_MARK = ".wanted"  # recorder.supervise.live.WANTED_MARK
SEGMENT_RE = re.compile(r"[A-Za-z0-9_-]{1,128}\.ts")
# The hub rewrites the playlist every second while it records; one this old was left behind
# by a hub that died without cleaning up, and would only make the player stall.
PLAYLIST_STALE_AFTER = dt.timedelta(seconds=10)
MAX_SEGMENT_BYTES = 64 * 1024 * 1024  # a second of even a 4K camera is far below this


class NotLive(LookupError):
    """The camera has no current live stream (or the name is not one of a live file)."""


def live_folder(storage_root: str | Path, camera: str) -> Path:
    """Return the live folder of a camera, refusing a name that is not a camera name."""
    if not is_valid_camera_name(camera):
        raise NotLive(f"no camera named {camera!r}")
    root = (Path(storage_root) / LIVE_DIR).resolve()
    folder = (root / camera).resolve()
    if folder.parent != root:  # a symlink out of the live folder
        raise NotLive(f"camera {camera} is not live")
    return folder


def _inside(folder: Path, name: str) -> Path:
    path = (folder / name).resolve()
    if path.parent != folder:
        raise NotLive(f"{name} is not a live file")
    return path


def mark_wanted(storage_root: str | Path, camera: str) -> None:
    """Tell the hub that someone watches this camera (it starts or keeps its live view)."""
    folder = live_folder(storage_root, camera)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _inside(folder, WANTED_MARK).touch()
    except OSError as exc:  # e.g. the storage is mounted read-only for the web app
        logger.warning("cannot ask for the live view of %s: %s", camera, exc)
        raise NotLive(f"camera {camera} is not live (the web app cannot write "
                      f"{LIVE_DIR}/{camera}/{WANTED_MARK}: {exc.strerror})") from None


def read_playlist(storage_root: str | Path, camera: str,
                  max_age: dt.timedelta = PLAYLIST_STALE_AFTER) -> bytes:
    """Return a camera's current live playlist, or raise NotLive if it is absent or stale."""
    path = _inside(live_folder(storage_root, camera), PLAYLIST)
    try:
        with path.open("rb") as handle:  # opened once: the hub replaces it by rename
            age = time.time() - os.fstat(handle.fileno()).st_mtime
            data = handle.read()
    except (FileNotFoundError, NotADirectoryError):
        raise NotLive(f"camera {camera} is not live") from None
    if age > max_age.total_seconds():
        raise NotLive(f"camera {camera} is not live (its live stream stopped "
                      f"{int(age)} s ago)")
    return data


def read_segment(storage_root: str | Path, camera: str, name: str) -> bytes:
    """Return one live piece, or raise NotLive (a bad name, or one that rolled away)."""
    if not SEGMENT_RE.fullmatch(name):
        raise NotLive(f"{name!r} is not a live segment name")
    path = _inside(live_folder(storage_root, camera), name)
    try:
        # Read whole (a second of video): the hub deletes pieces as they roll, and a file
        # held open by a slow client would only pin it.
        with path.open("rb") as handle:
            if os.fstat(handle.fileno()).st_size > MAX_SEGMENT_BYTES:
                raise NotLive(f"segment {name} is too large to be a live piece")
            return handle.read()
    except (FileNotFoundError, NotADirectoryError):
        raise NotLive(f"segment {name} of camera {camera} is gone (the live stream moved on, "
                      f"or the camera is not live)") from None
