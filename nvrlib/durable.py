"""Durable file-system steps shared by the edge's spool and the hub's storage."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Flush a folder, so a file created or renamed in it survives power loss."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file_durably(path: Path, data: bytes) -> None:
    """Write a whole file so that after a crash it is either complete or absent.

    The bytes go to ``<name>.part``, are fsynced, renamed over ``path``, and the folder is
    fsynced; a leftover ``.part`` is an interrupted write, safe to delete.
    """
    partial = path.with_name(path.name + ".part")
    with partial.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)
    fsync_dir(path.parent)
