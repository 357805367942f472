"""The web app's nudge to a hub: a file it touches after it changed what the hub acts on.

The control channel is the catalog (docs/design/control.md): the web app writes a command or
an ingest token there, and the hub reads it. Rather than ask the catalog every second, a hub
waits on inotify for ``<its storage>/.control/changed`` (recorder/supervise/marks.py), which the web app
touches after each such commit, and reads the catalog at once; it still reads it every
CONTROL_SAFETY_SECONDS (recorder/hub.py), so a change made without the nudge (another tool, a
web app that cannot write the storage) is acted on late, never lost.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

CONTROL_DIR = ".control"
CHANGED_MARK = "changed"


def control_dir(storage_root: str | Path) -> Path:
    """Return the folder of a hub's control mark."""
    return Path(storage_root) / CONTROL_DIR


def nudge(storage_root: str | Path) -> bool:
    """Touch a hub's control mark (after a commit it should act on); tell whether it worked."""
    folder = control_dir(storage_root)
    try:
        folder.mkdir(exist_ok=True)
        mark = folder / CHANGED_MARK
        if mark.is_symlink():  # never follow a link someone put there
            mark.unlink()
        fd = os.open(mark, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o664)
        try:
            os.utime(fd)
        finally:
            os.close(fd)
    except OSError as exc:  # a read-only storage for the web app: the hub's safety poll acts
        logger.debug("cannot nudge the hub at %s: %s", folder, exc)
        return False
    return True
