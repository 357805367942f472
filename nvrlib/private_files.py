"""Files only the service may read: the catalog, the users database, keys and tokens.

New ones are created 0600. An existing one that others can read (or the group can write) is
tightened to 0600 at start, with a log line naming it and its old mode. A file an admin set
to 0640 on purpose (read by the service's group, e.g. a web app running as another user of
that group) is left as it is.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

logger = logging.getLogger(__name__)

PRIVATE_MODE = 0o600
ALLOWED_BITS = 0o640  # owner read/write, group read: the most a private file may have
SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")


def tighten(path: Path) -> bool:
    """Make an existing file no more open than 0640 (to 0600 if it was); True if changed."""
    try:
        mode = stat.S_IMODE(os.stat(path, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return False
    if not mode & ~ALLOWED_BITS:
        return False
    new_mode = mode & PRIVATE_MODE
    try:
        os.chmod(path, new_mode, follow_symlinks=False)
    except PermissionError:  # another user's file we may only read: say so, and carry on
        logger.warning("%s is mode %04o (open to other users) and not ours to change; "
                       "chmod %04o it", path, mode, new_mode)
        return False
    logger.warning("%s was mode %04o (open to other users); tightened it to %04o",
                   path, mode, new_mode)
    return True


def create_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists (then only tighten it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_MODE)
    except FileExistsError:
        tighten(path)
        return
    os.close(fd)


def secure_sqlite_file(database: Path) -> None:
    """Create a SQLite database file 0600 before SQLite does (it would make it 0644), and
    tighten the file and its -wal, -shm and -journal if they exist.

    SQLite gives the -wal and -shm files it creates later the main file's mode.
    """
    create_private(database)
    for suffix in SQLITE_SUFFIXES[1:]:
        tighten(database.with_name(database.name + suffix))
