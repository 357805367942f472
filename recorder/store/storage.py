"""The storage layout on disk, and the durable file operations the catalog relies on."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
from pathlib import Path

from nvrlib.durable import fsync_dir
from nvrlib.names import is_valid_camera_name

from recorder.errors import StorageLocked

INCOMING = ".incoming"
LIVE = ".live"
QUARANTINE = ".quarantine"
THUMBS = ".thumbs"  # the web app's thumbnail cache: <root>/.thumbs/<camera>/<segment id>.jpg
LOCK_FILE = ".hub.lock"
SEGMENT_SUFFIX = ".ts"


class Storage:
    """Paths under the storage root: <camera>/<YYYY-MM-DD>/..., plus incoming and quarantine."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._lock_fd: int | None = None

    def camera_dir(self, camera: str) -> Path:
        """Return the folder of a camera's footage."""
        return self.root / camera

    def incoming_dir(self, camera: str) -> Path:
        """Return (and create) the folder where ffmpeg writes a camera's open segments."""
        path = self.camera_dir(camera) / INCOMING
        make_dirs_durable(path)
        return path

    def live_root(self) -> Path:
        """Return the folder holding every camera's live view folder."""
        return self.root / LIVE

    def live_dir(self, camera: str) -> Path:
        """Return the folder of a camera's on-demand live HLS (see recorder/supervise/live.py)."""
        return self.root / LIVE / camera

    def final_path(self, camera: str, start: dt.datetime, run_id: str, seq: int) -> Path:
        """Return where a finished segment lives: named by its UTC start, run and number."""
        start = start.astimezone(dt.timezone.utc)
        name = f"{camera}-{start:%Y%m%dT%H%M%S}.{start.microsecond // 1000:03d}Z-{run_id}-{seq:06d}"
        return self.camera_dir(camera) / f"{start:%Y-%m-%d}" / f"{name}{SEGMENT_SUFFIX}"

    def quarantine_path(self, source: Path) -> Path:
        """Return where an undecodable file is moved, keeping its camera folder."""
        relative = self.relative(source)
        return self.root / QUARANTINE / relative.parts[0] / source.name

    def relative(self, path: Path) -> Path:
        """Return ``path`` relative to the root, refusing anything outside it."""
        resolved = path.resolve()
        return resolved.relative_to(self.root)

    def resolve_catalog_path(self, relative: str) -> Path:
        """Turn a catalog path into an absolute path, refusing escapes from the root."""
        candidate = (self.root / relative).resolve()
        if not candidate.is_relative_to(self.root):
            raise ValueError(f"catalog path {relative!r} escapes the storage root")
        return candidate

    def thumbnail_path(self, camera: str, segment_id: int) -> Path:
        """Return where the web app caches a thumbnail: <root>/.thumbs/<camera>/<id>.jpg."""
        folder = camera if is_valid_camera_name(camera) else "_unnamed"
        return self.root / THUMBS / folder / f"{segment_id}.jpg"

    def disk_space(self) -> tuple[int, int]:
        """Return (total, free) bytes of the filesystem holding the root."""
        # f_bavail, not f_bfree: what an unprivileged writer can still use, as df shows it
        stats = os.statvfs(self.root)
        return stats.f_blocks * stats.f_frsize, stats.f_bavail * stats.f_frsize

    def lock(self) -> None:
        """Take the storage's exclusive lock, so two hubs never write the same files."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StorageLocked(f"another hub is recording into {self.root}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def unlock(self) -> None:
        """Release the storage lock."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def fsync_file(path: Path) -> None:
    """Flush a file's data to disk (ffmpeg closes files but never fsyncs them)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs_durable(path: Path) -> None:
    """Create a folder and its missing parents, fsyncing each parent that gained an entry."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        fsync_dir(folder.parent)


def durable_move(source: Path, target: Path) -> None:
    """fsync ``source``, rename it to ``target`` and fsync both folders."""
    fsync_file(source)
    make_dirs_durable(target.parent)
    os.replace(source, target)
    fsync_dir(target.parent)
    if source.parent != target.parent:
        fsync_dir(source.parent)
