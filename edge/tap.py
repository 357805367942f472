"""The hand-over from the encoder thread to the live sender: a bounded queue that never blocks.

The encoder runs on whether or not a live request is open. When the sender opens one it asks
for a keyframe; the tap starts flowing at the next keyframe (marking where in the spool the
live request begins) and queues every frame after it. If the link falls behind by more than
the queue holds, the tap stops flowing and tells the sender, which drops the request: the
spool has the footage and the backfill uploader sends it later. Capture never waits.
"""

from __future__ import annotations

import collections
import dataclasses
import threading

from .encoder import TICKS_PER_SECOND, Chunk
from .spool import LiveRange, Spool

# How far the live link may fall behind (stream time) before the request is dropped.
MAX_LAG_SECONDS = 10.0
MAX_QUEUED_BYTES = 32 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Start:
    """A live request may start here: a keyframe at ``pts`` of timeline ``epoch_ms``."""

    epoch_ms: int
    pts: int
    live: LiveRange


@dataclasses.dataclass(frozen=True)
class Frame:
    """One frame's TS bytes for the live request."""

    epoch_ms: int
    chunk: Chunk


END = object()  # the stream ended (stop, or the source's end): finish the request


class LiveTap:
    """Queue between the encoder thread (``offer``) and the live sender (``get``)."""

    def __init__(self, spool: Spool, max_lag_seconds: float = MAX_LAG_SECONDS) -> None:
        self._spool = spool
        self._max_lag = round(max_lag_seconds * TICKS_PER_SECOND)
        self._cond = threading.Condition()
        self._items: collections.deque[object] = collections.deque()
        self._bytes = 0
        self._wanted = False  # the sender waits for a keyframe to start at
        self._flowing: Start | None = None
        self._lagging = False
        self._ended = False
        self._ranges: list[LiveRange] = []

    # -- the encoder's side ------------------------------------------------------------------

    def keyframe_wanted(self) -> bool:
        """Tell whether the encoder should make the next frame a keyframe."""
        with self._cond:
            return self._wanted

    def begin_if_wanted(self, epoch_ms: int, chunk: Chunk) -> bool:
        """Start the live request's footage at this keyframe if one is wanted; tell if so.

        Called before the chunk goes to the spool, which then cuts a file here.
        """
        if not chunk.keyframe:
            return False
        with self._cond:
            new_timeline = self._flowing is not None and epoch_ms != self._flowing.epoch_ms
            if self._wanted or new_timeline:  # a new timeline: the sender opens a new request
                self._start(epoch_ms, chunk.pts)
                return True
            return False

    def offer(self, epoch_ms: int, chunk: Chunk) -> None:
        """Queue a frame if a live request is flowing; never blocks."""
        with self._cond:
            if self._flowing is None:
                return
            self._items.append(Frame(epoch_ms, chunk))
            self._bytes += len(chunk.data)
            if self._behind(chunk):
                self._drop_queue()
            self._cond.notify_all()

    def end(self) -> None:
        """The stream ended: the sender finishes its request after what is queued."""
        with self._cond:
            self._ended = True
            self._items.append(END)
            self._cond.notify_all()

    # -- the sender's side -------------------------------------------------------------------

    def open(self) -> None:
        """Ask for a keyframe to start a live request at."""
        with self._cond:
            self._wanted, self._lagging = True, False

    def get(self, timeout: float) -> object | None:
        """Return the next Start, Frame or END, or None after ``timeout``."""
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            if not self._items:
                return END if self._ended else None
            item = self._items.popleft()
            if isinstance(item, Frame):
                self._bytes -= len(item.chunk.data)
            return item

    @property
    def lagging(self) -> bool:
        """Tell whether the link fell too far behind (the request must be dropped)."""
        with self._cond:
            return self._lagging

    def close(self) -> list[LiveRange]:
        """Stop queueing (the request ended); return the live ranges it had, for the spool."""
        with self._cond:
            self._wanted, self._flowing = False, None
            self._items = collections.deque([END] if self._ended else [])
            self._bytes = 0
            ranges, self._ranges = self._ranges, []
            return ranges

    # -- internals (lock held) ---------------------------------------------------------------

    def _start(self, epoch_ms: int, pts: int) -> None:
        live = self._spool.live_begin(epoch_ms, pts)
        self._ranges.append(live)
        self._flowing = Start(epoch_ms, pts, live)
        self._wanted = False
        self._items.append(self._flowing)

    def _behind(self, chunk: Chunk) -> bool:
        if self._bytes > MAX_QUEUED_BYTES:
            return True
        oldest = next((i for i in self._items if isinstance(i, Frame)), None)
        return oldest is not None and oldest.epoch_ms == self._flowing.epoch_ms and (
            chunk.pts - oldest.chunk.pts > self._max_lag
        )

    def _drop_queue(self) -> None:
        self._lagging = True
        self._flowing = None
        self._items.clear()
        self._bytes = 0
