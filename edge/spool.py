"""Store-and-forward: every TS byte the encoder makes, on disk until the hub acknowledges it.

One ``Spool`` per camera, in its own folder. The encoder thread appends each frame's TS bytes;
files are cut at keyframes, so every file (and every span of consecutive files) can be sent
on its own. The live sender and the backfill uploader acknowledge PTS ranges the hub made
durable; acknowledged files are deleted. The invariants are in docs/design/recording.md,
"The edge's spool".

On-disk names (``<epoch_ms>``: the timeline's X-NVR-Stream-Epoch in ms; PTS in 90 kHz ticks)::

    <camera>/.lock                                   flock held by the edge that owns the folder
    <camera>/<epoch_ms>-<start>.part                 the file being written (at most one)
    <camera>/<epoch_ms>-<start>-<last>-<end>.ts      closed: fsynced, then renamed to this name
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import math
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from nvrlib.durable import fsync_dir

from .encoder import TICKS_PER_SECOND, TS_PACKET, Chunk
from .errors import EdgeError

logger = logging.getLogger(__name__)

# Files are cut at the first keyframe this long after their start: short enough that acks free
# space soon and a backfill can start close to any instant, long enough that the directory
# stays small (a day of 4-s files is ~21600 entries at most, and the spool is bounded anyway).
FILE_SECONDS = 4.0

WARN_EVERY = 60.0  # seconds between "spool full" warnings
READ_SIZE = 64 * 1024
_CLOSED_RE = re.compile(r"(\d{1,16})-(\d{1,16})-(\d{1,16})-(\d{1,16})\.ts")
_PART_RE = re.compile(r"(\d{1,16})-(\d{1,16})\.part")


class SpoolError(EdgeError):
    """The spool folder cannot be used (another edge holds it, or it is not writable)."""


@dataclasses.dataclass
class SpoolFile:
    """One closed spool file: a keyframe-started run of one timeline's TS packets."""

    epoch_ms: int
    start: int  # PTS of its first frame, a keyframe
    last: int  # PTS of its last frame
    end: int  # where the next file of the timeline starts (or last + one frame interval)
    size: int
    path: Path

    @property
    def seconds(self) -> float:
        """Return how much footage the file holds."""
        return (self.end - self.start) / TICKS_PER_SECOND

    @property
    def name(self) -> str:
        """Return the file name that records its timeline and PTS range."""
        return f"{self.epoch_ms}-{self.start}-{self.last}-{self.end}.ts"


@dataclasses.dataclass
class _OpenFile:
    """The file being appended to."""

    epoch_ms: int
    start: int
    path: Path
    fd: int
    last: int
    step: int | None = None  # the last PTS step between frames: the last frame's duration
    size: int = 0


@dataclasses.dataclass
class _Discard:
    """Frames skipped after an overflow took the open file, up to the next keyframe."""

    epoch_ms: int
    start: int
    last: int
    step: int | None


@dataclasses.dataclass(frozen=True)
class Span:
    """Consecutive closed, unacknowledged files of one timeline: one backfill request."""

    epoch_ms: int
    files: tuple[SpoolFile, ...]

    @property
    def start(self) -> int:
        """Return the PTS of the span's first frame (a keyframe)."""
        return self.files[0].start

    @property
    def last(self) -> int:
        """Return the PTS of the span's last frame."""
        return self.files[-1].last

    @property
    def size(self) -> int:
        """Return the span's bytes."""
        return sum(f.size for f in self.files)

    @property
    def seconds(self) -> float:
        """Return how much footage the span holds."""
        return (self.files[-1].end - self.start) / TICKS_PER_SECOND

    @property
    def backfill_id(self) -> str:
        """Return the X-NVR-Backfill-Id: timeline and first PTS, stable across retries."""
        return f"{self.epoch_ms}-{self.start}"

    def open(self) -> SpanReader:
        """Open every file now, so an overflow that deletes one mid-upload cannot cut the read."""
        return SpanReader(self)


class SpanReader:
    """Reads a span's bytes from descriptors opened up front (deleted files stay readable)."""

    def __init__(self, span: Span) -> None:
        self._files = []
        try:
            for f in span.files:
                self._files.append(f.path.open("rb"))
        except FileNotFoundError:
            pass  # evicted before we got here: send the part that is still there
        self.files = span.files[: len(self._files)]

    def chunks(self, size: int = READ_SIZE) -> Iterator[bytes]:
        """Yield the span's bytes in pieces of at most ``size``."""
        for f in self._files:
            while data := f.read(size):
                yield data

    def close(self) -> None:
        """Close the descriptors."""
        for f in self._files:
            f.close()

    def __enter__(self) -> SpanReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclasses.dataclass(frozen=True)
class LiveRange:
    """Footage from ``start`` on in a timeline goes out on a live request that is still open."""

    token: int
    epoch_ms: int
    start: int


class Spool:
    """A bounded, per-camera folder of encoded footage, deleted only when acknowledged.

    Thread-safe: the encoder thread appends, the live sender and the backfill uploader ack.
    """

    def __init__(
        self, folder: Path, max_bytes: int, *, file_seconds: float = FILE_SECONDS,
        fps: float = 15.0, fsync: bool = True, log: logging.Logger | None = None,
    ) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.file_seconds = file_seconds
        self.fsync = fsync
        self.log = log or logger
        # A timeline's last frame lasts until the next would have come: one frame interval.
        self._step = round(TICKS_PER_SECOND / fps)
        self._last_warning = -math.inf
        self._last_error = -math.inf
        self.dropped_total = 0.0  # seconds evicted unacknowledged, over the spool's life
        self._dropped_unreported = 0.0
        self._lock = threading.Lock()
        self._closed: list[SpoolFile] = []
        self._open: _OpenFile | None = None
        self._bytes = 0
        self._discard: _Discard | None = None  # skipping frames up to the next keyframe
        self._acks: list[tuple[int, int, int]] = []  # acks that may cover the open file
        self._live: dict[int, LiveRange] = {}
        self._next_token = 0
        self._lock_fd = _take_folder_lock(folder)
        self._recover()

    # -- the encoder's side ------------------------------------------------------------------

    def append(self, epoch_ms: int, chunk: Chunk, *, boundary: bool = False) -> None:
        """Add one frame's TS bytes; ``boundary`` cuts a file here (a keyframe)."""
        if not chunk.data:
            return
        with self._lock:
            try:
                self._append(epoch_ms, chunk, boundary)
            except OSError as exc:  # disk full or failing: the live stream must go on
                self._abandon_open(chunk.pts, exc)

    def _append(self, epoch_ms: int, chunk: Chunk, boundary: bool) -> None:
        if self._open and self._open.epoch_ms != epoch_ms:
            self._close_open(None)
        if self._discarding(epoch_ms, chunk):
            return
        if self._open and chunk.keyframe and (boundary or self._due(chunk.pts)):
            self._close_open(chunk.pts)
        if self._open is None:
            if not chunk.keyframe:  # a file must start at a keyframe: nothing to hang it on
                self._start_discard(epoch_ms, chunk.pts, None)
                return
            self._open = self._new_file(epoch_ms, chunk.pts)
        self._make_room(len(chunk.data), chunk.pts)
        if self._open is not None:
            self._write(chunk)

    def close_timeline(self) -> None:
        """Close the open file (the timeline ended, or the edge stops)."""
        with self._lock:
            self._end_discard()
            if self._open:
                self._close_open(None)

    def close(self) -> None:
        """Close the open file and release the folder."""
        self.close_timeline()
        with self._lock:
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    # -- the uploaders' side -----------------------------------------------------------------

    def ack(self, epoch_ms: int, from_pts: int, below_pts: int) -> int:
        """Delete files of a timeline with start >= from_pts whose frames are all < below_pts.

        Returns the number of files deleted. Acks that may cover the open file are kept and
        applied when it closes.
        """
        with self._lock:
            keep, done = [], []
            for f in self._closed:  # one pass: a clean end may ack hours of files at once
                (done if _acked(f, epoch_ms, from_pts, below_pts) else keep).append(f)
            self._closed = keep
            self._bytes -= sum(f.size for f in done)
            if self._open and self._open.epoch_ms == epoch_ms and self._open.start >= from_pts:
                self._acks.append((epoch_ms, from_pts, below_pts))
        for f in done:  # outside the lock: the encoder thread never waits for these
            _unlink(f.path)
        return len(done)

    def live_begin(self, epoch_ms: int, start: int) -> LiveRange:
        """Mark footage from ``start`` on as going out live (not eligible for backfill)."""
        with self._lock:
            self._next_token += 1
            live = LiveRange(self._next_token, epoch_ms, start)
            self._live[live.token] = live
            return live

    def live_end(self, live: LiveRange) -> None:
        """The live request ended: what it did not get acknowledged is backfill's now."""
        with self._lock:
            self._live.pop(live.token, None)

    def next_span(self, max_seconds: float, max_bytes: int) -> Span | None:
        """Return the oldest run of closed, unacked files outside any live request, or None."""
        with self._lock:
            files: list[SpoolFile] = []
            for f in self._closed:
                if self._in_live(f):
                    if files:
                        break
                    continue
                if files and (f.epoch_ms != files[-1].epoch_ms or f.start != files[-1].end):
                    break
                if files and (_seconds(files[0].start, f.end) > max_seconds
                              or sum(x.size for x in files) + f.size > max_bytes):
                    break
                files.append(f)
            return Span(files[0].epoch_ms, tuple(files)) if files else None

    def take_dropped(self) -> float:
        """Return the seconds dropped since the last report, and reset that count."""
        with self._lock:
            dropped, self._dropped_unreported = self._dropped_unreported, 0.0
            return dropped

    def give_back_dropped(self, seconds: float) -> None:
        """Put back an unreported count (the request that carried it was not accepted)."""
        with self._lock:
            self._dropped_unreported += seconds

    @property
    def size(self) -> int:
        """Return the bytes held, the open file included."""
        with self._lock:
            return self._bytes

    def files(self) -> list[SpoolFile]:
        """Return the closed files, oldest first."""
        with self._lock:
            return list(self._closed)

    def open_range(self) -> tuple[int, int, int] | None:
        """Return the open file's (epoch_ms, start, last PTS), or None."""
        with self._lock:
            f = self._open
            return (f.epoch_ms, f.start, f.last) if f else None

    def pending_seconds(self) -> float:
        """Return the footage held in closed files."""
        with self._lock:
            return sum(f.seconds for f in self._closed)

    # -- internals (called with the lock held) -----------------------------------------------

    def _due(self, pts: int) -> bool:
        assert self._open is not None
        return pts - self._open.start >= self.file_seconds * TICKS_PER_SECOND

    def _new_file(self, epoch_ms: int, pts: int) -> _OpenFile:
        path = self.folder / f"{epoch_ms}-{pts}.part"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        return _OpenFile(epoch_ms, pts, path, fd, last=pts)

    def _write(self, chunk: Chunk) -> None:
        f = self._open
        assert f is not None
        os.write(f.fd, chunk.data)
        if chunk.pts > f.last:
            f.step, f.last = chunk.pts - f.last, chunk.pts
        f.size += len(chunk.data)
        self._bytes += len(chunk.data)

    def _close_open(self, next_start: int | None) -> None:
        """Close the open file: fsync, rename to its closed name, fsync the folder."""
        f = self._open
        assert f is not None
        self._open = None
        end = next_start if next_start is not None else f.last + (f.step or self._step)
        closed = SpoolFile(f.epoch_ms, f.start, f.last, max(end, f.last), f.size, f.path)
        if self.fsync:
            os.fsync(f.fd)
        os.close(f.fd)
        closed.path = self.folder / closed.name
        os.rename(f.path, closed.path)
        if self.fsync:
            fsync_dir(self.folder)
        acks, self._acks = self._acks, []
        if any(_acked(closed, *a) for a in acks):
            self._bytes -= closed.size
            _unlink(closed.path)
            return
        self._closed.append(closed)

    def _make_room(self, incoming: int, pts: int) -> None:
        """Evict the oldest footage until ``incoming`` more bytes fit under max_bytes."""
        while self._bytes + incoming > self.max_bytes and self._closed:
            self._evict(self._closed[0])
        if self._bytes + incoming > self.max_bytes and self._open is not None:
            # One open file alone is too big: drop it, and the frames up to the next keyframe.
            f, self._open = self._open, None
            os.close(f.fd)
            _unlink(f.path)
            self._bytes -= f.size
            acked = any(e == f.epoch_ms and lo <= f.start and f.last < hi for e, lo, hi in self._acks)
            self._acks = []
            self._count_dropped(_seconds(f.start, pts), live=acked)
            self._start_discard(f.epoch_ms, pts, f.step)

    def _abandon_open(self, pts: int, exc: OSError) -> None:
        """A write failed: drop the open file and skip to the next keyframe (counted)."""
        now = time.monotonic()
        if now - self._last_error >= WARN_EVERY:
            self._last_error = now
            self.log.error("spool write failed in %s: %s (the live stream goes on)",
                           self.folder, exc.strerror or exc)
        f, self._open = self._open, None
        if f is None:
            return
        with contextlib.suppress(OSError):
            os.close(f.fd)
        _unlink(f.path)
        self._bytes -= f.size
        self._count_dropped(_seconds(f.start, pts), live=False)
        self._start_discard(f.epoch_ms, pts, f.step)

    def _evict(self, f: SpoolFile) -> None:
        self._delete(f)
        # Footage of a live request still open went (or is going) out on it: not dropped.
        self._count_dropped(f.seconds, live=self._in_live(f))

    def _count_dropped(self, seconds: float, live: bool) -> None:
        """Count evicted footage, unless it went out on a live request or was acknowledged."""
        if live or seconds <= 0:
            return
        self.dropped_total += seconds
        self._dropped_unreported += seconds
        now = time.monotonic()
        if now - self._last_warning >= WARN_EVERY:  # a full spool drops a file every few seconds
            self._last_warning = now
            self.log.warning(
                "spool full (%d MB): dropping the oldest footage the hub has not acknowledged "
                "(%.1f s dropped so far)", self.max_bytes // 1_000_000, self.dropped_total,
            )

    def _delete(self, f: SpoolFile) -> None:
        self._closed.remove(f)
        self._bytes -= f.size
        _unlink(f.path)

    def _in_live(self, f: SpoolFile) -> bool:
        return any(r.epoch_ms == f.epoch_ms and f.start >= r.start for r in self._live.values())

    def _discarding(self, epoch_ms: int, chunk: Chunk) -> bool:
        """Skip frames after an overflow until a keyframe; count what was skipped."""
        d = self._discard
        if d is None:
            return False
        if d.epoch_ms != epoch_ms:
            self._end_discard()
            return False
        if chunk.keyframe:
            self._count_dropped(_seconds(d.start, chunk.pts), live=False)
            self._discard = None
            return False
        if chunk.pts > d.last:
            d.step, d.last = chunk.pts - d.last, chunk.pts
        return True

    def _start_discard(self, epoch_ms: int, from_pts: int, step: int | None) -> None:
        self._discard = _Discard(epoch_ms, from_pts, from_pts, step)

    def _end_discard(self) -> None:
        """A timeline ended while skipping: count up to its last frame's end."""
        d = self._discard
        if d is not None:
            self._count_dropped(_seconds(d.start, d.last + (d.step or self._step)), live=False)
            self._discard = None

    # -- start-up ----------------------------------------------------------------------------

    def _recover(self) -> None:
        """Load closed files; close a ``.part`` an edge crash left (cut to whole packets)."""
        for path in sorted(self.folder.iterdir()):
            if m := _CLOSED_RE.fullmatch(path.name):
                epoch_ms, start, last, end = map(int, m.groups())
                self._closed.append(SpoolFile(epoch_ms, start, last, end, path.stat().st_size, path))
            elif m := _PART_RE.fullmatch(path.name):
                self._recover_part(path, int(m.group(1)), int(m.group(2)))
        self._closed.sort(key=lambda f: (f.epoch_ms, f.start))
        self._bytes = sum(f.size for f in self._closed)
        while self._bytes > self.max_bytes and self._closed:
            self._evict(self._closed[0])
        if self._closed:
            self.log.info("spool holds %d files, %.1f s of footage not yet acknowledged",
                          len(self._closed), sum(f.seconds for f in self._closed))

    def _recover_part(self, path: Path, epoch_ms: int, start: int) -> None:
        size = path.stat().st_size // TS_PACKET * TS_PACKET
        os.truncate(path, size)
        pts = _probe_pts(path) if size else []
        if not pts:
            self.log.warning("spool: %s holds no decodable frame; deleted", path.name)
            _unlink(path)
            return
        step = pts[-1] - pts[-2] if len(pts) > 1 else self._step
        f = SpoolFile(epoch_ms, start, pts[-1], pts[-1] + step, size, path)
        f.path = self.folder / f.name
        os.rename(path, f.path)
        fsync_dir(self.folder)
        self._closed.append(f)


def _acked(f: SpoolFile, epoch_ms: int, from_pts: int, below_pts: int) -> bool:
    return f.epoch_ms == epoch_ms and f.start >= from_pts and f.last < below_pts


def _seconds(start: int, end: int) -> float:
    return max(0, end - start) / TICKS_PER_SECOND


def _unlink(path: Path) -> None:
    # No folder fsync: a deletion undone by a power cut only means a re-upload (overlap).
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _take_folder_lock(folder: Path) -> int:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise SpoolError(f"spool folder {folder}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SpoolError(f"spool folder {folder} is in use by another edge process") from None
    return fd


def _probe_pts(path: Path) -> list[int]:
    """Return the PTS of the packets PyAV can demux from a TS file (empty if none)."""
    import av  # only at start-up after a crash; PyAV is loaded by the encoder anyway

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            return [p.pts for p in container.demux(stream) if p.pts is not None]
    except (av.FFmpegError, IndexError):
        return []


class NullSpool:
    """``--no-spool``: the same interface, keeping nothing (what the hub misses is lost)."""

    folder = None
    dropped_total = 0.0

    def append(self, epoch_ms: int, chunk: Chunk, *, boundary: bool = False) -> None:
        """Keep nothing."""

    def close_timeline(self) -> None:
        """Nothing to close."""

    def close(self) -> None:
        """Nothing to close."""

    def ack(self, epoch_ms: int, from_pts: int, below_pts: int) -> int:
        """Nothing to delete."""
        return 0

    def live_begin(self, epoch_ms: int, start: int) -> LiveRange:
        """Return a range nobody keeps."""
        return LiveRange(0, epoch_ms, start)

    def live_end(self, live: LiveRange) -> None:
        """Nothing to release."""

    def next_span(self, max_seconds: float, max_bytes: int) -> Span | None:
        """Nothing to backfill."""
        return None

    def take_dropped(self) -> float:
        """Nothing dropped (nothing kept)."""
        return 0.0

    def give_back_dropped(self, seconds: float) -> None:
        """Nothing to put back."""
