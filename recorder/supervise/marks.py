"""Waiting for the marks the web app leaves in the storage, on inotify instead of polls.

The web app asks a hub for two things through files in its storage: a camera's live view
(``.live/<camera>/.wanted``, touched on every playlist fetch: recorder/supervise/live.py) and
a look at the catalog's control rows (``.control/changed``, touched after it queues a command
or changes a token: nvrlib/control_mark.py). The hub used to look for the first ten times a
second and read the catalog every second for the second; on a small machine those wake-ups of
an idle hub cost more than relaying a camera (scripts/bench/hub_cpu.py). A MarkWatcher holds
one inotify descriptor on the event loop and sets ``live`` or ``control`` when such a mark is
touched; the hub's loops wait on them with a long safety timeout.

Without inotify (another OS, or the user's inotify instances or watches used up) ``active`` is
False and the hub polls as it did.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from nvrlib.control_mark import CHANGED_MARK
from recorder.supervise.live import WANTED_MARK
from recorder.supervise.waits import within

logger = logging.getLogger(__name__)

try:
    from inotify_simple import INotify, flags
except ImportError:  # pragma: no cover - a hub installed without it polls
    INotify = None  # type: ignore[assignment,misc]

# a mark is made (create), touched (attrib) or rewritten (close_write, or renamed in place)
_TOUCHED = ("CREATE", "ATTRIB", "CLOSE_WRITE", "MOVED_TO")


class MarkWatcher:
    """Sets ``live`` when a viewer's mark is touched, ``control`` when the control mark is."""

    def __init__(self, live_root: Path, control_dir: Path) -> None:
        self.live_root, self.control_dir = live_root, control_dir
        self.live = asyncio.Event()
        self.control = asyncio.Event()
        self.active = False
        self._inotify: INotify | None = None
        self._folders: dict[int, str] = {}  # watch descriptor -> "" (live root), camera, or "."

    def start(self) -> bool:
        """Watch the mark folders (made if missing); return False to have the caller poll."""
        if INotify is None:
            return False
        try:
            for folder in (self.live_root, self.control_dir):
                folder.mkdir(parents=True, exist_ok=True)
            self._inotify = INotify(nonblocking=True)
            touched = _mask(*_TOUCHED)
            self._watch(self.control_dir, touched, ".")
            self._watch(self.live_root, _mask("CREATE", "MOVED_TO", "ONLYDIR"), "")
            for entry in os.scandir(self.live_root):
                if entry.is_dir(follow_symlinks=False):
                    self._watch(Path(entry.path), touched, entry.name)
            asyncio.get_running_loop().add_reader(self._inotify.fileno(), self._read)
        except OSError as exc:
            logger.warning("cannot watch %s and %s with inotify (%s): polling them instead",
                           self.live_root, self.control_dir, exc)
            self.close()
            return False
        self.active = True
        return True

    def close(self) -> None:
        """Stop watching."""
        if self._inotify is None:
            return
        if self.active:
            asyncio.get_running_loop().remove_reader(self._inotify.fileno())
        self._inotify.close()
        self._inotify, self.active = None, False
        self._folders.clear()

    def _watch(self, folder: Path, mask: int, key: str) -> None:
        assert self._inotify is not None
        self._folders[self._inotify.add_watch(folder, mask)] = key

    def _read(self) -> None:
        assert self._inotify is not None
        try:
            events = self._inotify.read(timeout=0)
        except BlockingIOError:
            return
        except OSError as exc:  # never seen; wake both loops and let them poll
            logger.warning("inotify read failed (%s): polling the marks instead", exc)
            self.close()
            self.live.set()
            self.control.set()
            return
        for event in events:
            self._handle(event.wd, event.mask, event.name)

    def _handle(self, wd: int, mask: int, name: str) -> None:
        if mask & flags.Q_OVERFLOW:  # events were lost: look at everything
            self.live.set()
            self.control.set()
            return
        if mask & flags.IGNORED:  # the folder went away (a camera's live folder cleared)
            self._folders.pop(wd, None)
            return
        key = self._folders.get(wd)
        if key == "." and name == CHANGED_MARK:
            self.control.set()
        elif key == "" and mask & flags.ISDIR:  # a first viewer of a camera made its folder
            try:
                self._watch(self.live_root / name, _mask(*_TOUCHED), name)
            except OSError:
                return  # gone already, or out of watches: the live loop's safety poll sees it
            if (self.live_root / name / WANTED_MARK).exists():  # touched before the watch
                self.live.set()
        elif key and name == WANTED_MARK:
            self.live.set()


def _mask(*names: str) -> int:
    value = 0
    for name in names:
        value |= flags[name]
    return value


async def wait_for(event: asyncio.Event, timeout: float) -> bool:
    """Wait until ``event`` is set or ``timeout`` passes; clear it; tell whether it was set."""
    if not event.is_set() and timeout > 0:
        await within(event.wait(), timeout)  # not asyncio.wait_for: see waits.py
    was_set = event.is_set()
    event.clear()
    return was_set
