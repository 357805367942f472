"""Every viewer of a camera fed from one reader of the hub's live fMP4 files (docs/design/live.md).

The hub's live tap writes a camera's fragments (one frame each) as a small ring of files under
``.live/<camera>/`` (layout: nvrlib.fmp4). One `Feed` per watched camera tails them in a thread
(a stat every POLL_SECONDS) and keeps the newest groups of pictures in memory; each viewer's
response is a generator that waits on the feed and sends what is new. A new viewer starts with
the init segment and the newest group (its keyframe on), so its first picture comes at once. A
viewer that does not keep up (its unsent bytes pile up in the server) is sent nothing more until
it drains, then starts again at the newest keyframe: it skips, the others never wait for it.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from flask import Flask

from nvrlib import fmp4

from .files import NotLive, live_folder, mark_wanted

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.02  # the hub appends a frame every 33-67 ms: a poll adds ~10 ms on average
MARK_EVERY_SECONDS = 2.0  # the hub keeps the tap while the mark is younger than 20 s
STALE_SECONDS = 10.0  # a head this old was left by a hub that stopped: not live
IDLE_SECONDS = 5.0  # a feed nobody watched this long stops its thread
# at most (20 s at 30 fps with 48-kHz AAC: 30 + 47 fragments a second); normally the newest two
# groups of pictures
FRAGMENTS_KEPT = 1500
WAIT_SECONDS = 15.0  # a viewer that got nothing this long is ended (the player retries)
STREAM_SECONDS = 300.0  # a stream ends after this (the player reconnects): login is re-checked
BACKLOG_BYTES = 96 * 1024  # unsent bytes of one viewer that mean it does not keep up
SEND_BUFFER = 64 * 1024  # the kernel's share of a viewer's backlog (SO_SNDBUF of live sockets)


@dataclasses.dataclass
class Fragment:
    """One moof + mdat, numbered in the order the feed read them."""

    serial: int
    data: bytes
    keyframe: bool


class Feed:
    """One camera's live fragments, read once from the hub's files, for every viewer."""

    def __init__(self, storage_root: str | Path, camera: str) -> None:
        self.storage_root, self.camera = storage_root, camera
        self.folder = live_folder(storage_root, camera)  # the one place that finds it (files.py)
        self.changed = threading.Condition()
        self.tap: str | None = None  # the hub's tap run whose files are read
        self.init = b""
        self._video_track: int | None = None  # the init's video track: keyframes are on it
        self.fragments: collections.deque[Fragment] = collections.deque(maxlen=FRAGMENTS_KEPT)
        self.newest_keyframe = 0  # serial of the newest keyframe (0: none yet)
        self._keyframe_before = 0  # the one before it: older fragments are let go
        self.viewers = 0
        self.closed = False
        self._serial = 0
        self._group: tuple[str, int] | None = None
        self._file: BinaryIO | None = None
        self._pending = b""
        self._head_stamp: tuple[int, int] | None = None
        self._marked = 0.0
        self._last_data = time.monotonic()
        self._idle_since = time.monotonic()
        self._stopping = threading.Event()

    # -- the reader thread ----------------------------------------------------------------

    def run(self) -> None:
        """Tail the hub's files until nobody has watched for IDLE_SECONDS."""
        try:
            while not self._stopping.is_set() and not self._idle_too_long():
                self._mark()
                try:
                    self._read_once()
                except (OSError, fmp4.BadBox) as exc:
                    logger.debug("live feed of %s: %s", self.camera, exc)
                    self._reset()
                self._stopping.wait(POLL_SECONDS)
        finally:
            self._close_file()
            with self.changed:
                self.closed = True
                self.changed.notify_all()

    def stop(self) -> None:
        """End the reader thread and, at once, every viewer's stream."""
        self._stopping.set()
        with self.changed:
            self.closed = True
            self.changed.notify_all()

    def _idle_too_long(self) -> bool:
        with self.changed:
            if self.viewers:
                self._idle_since = time.monotonic()
            # closed in the same breath: a viewer that joins now gets a new feed (Feeds.join)
            self.closed = time.monotonic() - self._idle_since > IDLE_SECONDS
            return self.closed

    def _mark(self) -> None:
        now = time.monotonic()
        if now - self._marked >= MARK_EVERY_SECONDS:
            self._marked = now
            try:
                mark_wanted(self.storage_root, self.camera)
            except NotLive:
                pass  # logged by mark_wanted; viewers wait and time out

    def _read_once(self) -> None:
        folder = self.folder
        head = self._read_head(folder)
        if head is None:
            return
        tap, number = head
        if tap != self.tap:
            self._start_tap(folder, tap, number)
        elif self._group is not None and number != self._group[1]:
            self._drain()  # the rest of the group before (if the reader is not a group behind)
            self._open_group(folder, tap, number)
        if self._drain():
            self._last_data = time.monotonic()
        elif time.monotonic() - self._last_data > STALE_SECONDS:
            self._reset()  # the hub stopped writing (it stopped, or the camera did)

    def _read_head(self, folder: Path) -> tuple[str, int] | None:
        try:
            stat = os.stat(folder / fmp4.HEAD)
        except FileNotFoundError:
            return None
        stamp = (stat.st_ino, stat.st_mtime_ns)
        if stamp == self._head_stamp:
            return self._group
        if self._group is None and time.time() - stat.st_mtime > STALE_SECONDS:
            return None  # left behind by a hub that stopped
        self._head_stamp = stamp
        return fmp4.parse_head((folder / fmp4.HEAD).read_text(errors="replace"))

    def _start_tap(self, folder: Path, tap: str, number: int) -> None:
        init = (folder / fmp4.init_name(tap)).read_bytes()
        with self.changed:
            self.tap, self.init = tap, init
            self._video_track = fmp4.video_track_id(init)
            self.fragments.clear()
            self.newest_keyframe = self._keyframe_before = 0
            self.changed.notify_all()  # viewers of the last run end; their players reconnect
        self._open_group(folder, tap, number)

    def _open_group(self, folder: Path, tap: str, number: int) -> None:
        self._close_file()
        self._file = open(folder / fmp4.group_name(tap, number), "rb")  # noqa: SIM115
        self._group, self._pending = (tap, number), b""
        self._last_data = time.monotonic()

    def _drain(self) -> bool:
        """Publish the whole fragments appended since the last read; tell if any bytes came."""
        if self._file is None:
            return False
        data = self._file.read()
        if not data:
            return False
        boxes, self._pending = fmp4.split_boxes(self._pending + data)
        fragments, moof = [], None
        for box in boxes:
            if fmp4.box_type(box) == b"moof":
                moof = box
            elif moof is not None:
                fragments.append(moof + box)
                moof = None
        if moof is not None:  # a moof whose mdat is not all there yet: read it again
            self._pending = moof + self._pending
        self._publish(fragments)
        return True

    def _publish(self, fragments: list[bytes]) -> None:
        if not fragments:
            return
        with self.changed:
            for data in fragments:
                self._serial += 1
                keyframe = fmp4.starts_with_keyframe(data, self._video_track)
                self.fragments.append(Fragment(self._serial, data, keyframe))
                if keyframe:
                    self._keyframe_before, self.newest_keyframe = self.newest_keyframe, self._serial
            # two groups: a viewer a little behind still finds its next frame, memory stays small
            while self.fragments and self.fragments[0].serial < self._keyframe_before:
                self.fragments.popleft()
            self.changed.notify_all()

    def _reset(self) -> None:
        self._close_file()
        self._group, self._head_stamp = None, None
        with self.changed:
            self.tap = None
            self.changed.notify_all()  # its viewers end; their players retry

    def _close_file(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    # -- the viewers ----------------------------------------------------------------------

    def watch(self, backlog: Callable[[], int]) -> Iterator[bytes]:
        """Yield one viewer's stream: init segment, newest group, then each new fragment."""
        started = last_sent = time.monotonic()
        cursor = Cursor()
        while time.monotonic() - started < STREAM_SECONDS:
            with self.changed:
                if not self.closed and not self._has_news(cursor):
                    self.changed.wait(1.0)
                if self.closed:
                    return
                chunk = self.take(cursor, backlog() > BACKLOG_BYTES)
            if chunk is None:
                return  # a new run of the hub's tap: the player starts over with its init
            if chunk:
                last_sent = time.monotonic()
                yield chunk
            elif time.monotonic() - last_sent > WAIT_SECONDS:
                return  # nothing to show (yet): the player says so and retries
            elif cursor.lagging:
                time.sleep(POLL_SECONDS)

    def take(self, cursor: Cursor, behind: bool) -> bytes | None:
        """Return what a viewer is owed now (b"" if nothing), None if its tap run ended.

        The caller holds ``changed``. ``behind``: the viewer's unsent bytes pile up, so it gets
        nothing now and, once drained, starts again at the newest keyframe if one came.
        """
        if cursor.tap is not None and self.tap != cursor.tap:
            return None
        if not self._has_news(cursor):
            return b""
        if behind:
            cursor.lagging = True
            return b""
        parts: list[bytes] = []
        if cursor.tap is None:
            parts.append(self.init)
        sent = cursor.sent
        if (cursor.tap is None or sent < self.fragments[0].serial - 1
                or (cursor.lagging and self.newest_keyframe > sent + 1)):
            sent = self.newest_keyframe - 1  # start (again) at the newest keyframe
        parts += [f.data for f in self.fragments if f.serial > sent]
        cursor.tap, cursor.sent, cursor.lagging = self.tap, self.fragments[-1].serial, False
        return b"".join(parts)

    def _has_news(self, cursor: Cursor) -> bool:
        if cursor.tap is None:
            return self.newest_keyframe > 0 and self.tap is not None
        return bool(self.fragments) and self.fragments[-1].serial > cursor.sent


@dataclasses.dataclass
class Cursor:
    """Where one viewer is in one feed: the tap run it plays, the last fragment it was sent."""

    tap: str | None = None
    sent: int = 0
    lagging: bool = False


def wall_frame(index: int, chunk: bytes, starts_run: bool) -> bytes:
    """Frame one camera's bytes for a wall stream: length, camera index, 1 if an init leads."""
    return struct.pack(">IBB", len(chunk), index, int(starts_run)) + chunk


def watch_wall(feeds: list[Feed], backlog: Callable[[], int]) -> Iterator[bytes]:
    """Yield the stream of several cameras at once (one connection for a wall of them)."""
    cursors = [Cursor() for _ in feeds]
    started = time.monotonic()
    while time.monotonic() - started < STREAM_SECONDS:
        behind, frames = backlog() > BACKLOG_BYTES, []
        for index, feed in enumerate(feeds):
            starts_run = cursors[index].tap is None
            with feed.changed:
                if feed.closed:
                    return  # the server stops
                chunk = feed.take(cursors[index], behind)
            if chunk is None:
                cursors[index] = Cursor()  # a new tap run: its init comes with the next frame
            elif chunk:
                frames.append(wall_frame(index, chunk, starts_run))
        if frames:
            yield b"".join(frames)
        else:
            time.sleep(POLL_SECONDS)  # one poll for all its cameras, not a wake-up per camera


class Feeds:
    """The feed of each watched camera of this web app, started on the first viewer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._feeds: dict[str, Feed] = {}

    def join(self, storage_root: str | Path, camera: str) -> Feed:
        """Return the camera's feed (starting its reader if needed), counting one more viewer."""
        with self._lock:
            feed = self._feeds.get(camera)
            if feed is not None:
                with feed.changed:
                    if not feed.closed:
                        feed.viewers += 1
                        return feed
            feed = Feed(storage_root, camera)
            feed.viewers = 1
            self._feeds[camera] = feed
            threading.Thread(target=feed.run, name=f"live-feed-{camera}", daemon=True).start()
            return feed

    def stream(self, storage_root: str | Path, camera: str,
               backlog: Callable[[], int]) -> Iterator[bytes]:
        """Yield a viewer's stream of a camera; the viewer is counted until it ends."""
        yield from self.stream_wall([(storage_root, camera)], backlog, single=True)

    def stream_wall(self, cameras: list[tuple[str | Path, str]], backlog: Callable[[], int],
                    single: bool = False) -> Iterator[bytes]:
        """Yield a wall's stream of several cameras, each ``(its hub's storage root, name)``
        (or, ``single``, one camera's plain fMP4)."""
        feeds = [self.join(storage_root, camera) for storage_root, camera in cameras]
        try:
            yield from feeds[0].watch(backlog) if single else watch_wall(feeds, backlog)
        finally:
            for feed in feeds:
                with feed.changed:
                    feed.viewers -= 1


    def stop_all(self) -> None:
        """End every feed and every viewer's stream (the server is stopping)."""
        with self._lock:
            feeds = list(self._feeds.values())
        for feed in feeds:
            feed.stop()


FEEDS_KEY = "live_feeds"


def feeds_of(app: Flask) -> Feeds:
    """The app's live feeds (made on first use)."""
    return app.extensions.setdefault(FEEDS_KEY, Feeds())


def end_live_streams(app: Flask) -> None:
    """End every open live stream of the app (at shutdown: their threads are freed at once)."""
    feeds = app.extensions.get(FEEDS_KEY)
    if feeds is not None:
        feeds.stop_all()
