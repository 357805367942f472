"""Live view on demand: a camera's fMP4 fragments and a rolling 1-s HLS, made while someone watches.

The web app touches ``<storage>/.live/<camera>/.wanted`` while a browser watches (its live
stream, or the HLS playlist of the fallback player); the hub's live loop starts a tap for a
camera whose mark is fresh and stops it when the mark goes stale. The tap's one ffmpeg writes
both the HLS and, on its stdout, fragmented MP4 that `mse_ring.MseRing` files for the web app
(docs/design/live.md). A pushed camera's tap is fed a copy of the bytes the segmenter gets;
a pulled camera's tap opens its own RTSP session. Recording never waits for a tap: a tap that
cannot keep up loses live pieces, not footage.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import secrets
import signal
import time
from pathlib import Path
from typing import Protocol

from nvrlib import fmp4
from recorder.supervise import ffmpeg, pts
from recorder.supervise.mse_ring import MseRing
from recorder.supervise.waits import within

logger = logging.getLogger(__name__)

WANTED_MARK = ".wanted"
WANTED_FRESH_SECONDS = 20.0  # a watching browser re-fetches the playlist every ~1 s
TAP_BUFFER_LIMIT = 4 * 1024 * 1024
STOP_TIMEOUT = 2.0  # seconds a tap may take to stop before it is killed
# A pushed camera's newest bytes, kept while it records: a new tap starts from them, so the
# first picture comes from the last keyframe instead of the next one (an edge sends one a second).
RECENT_SECONDS = 2.5
RECENT_BYTES = 4 * 1024 * 1024
READ_CHUNK = 256 * 1024
# A version-3 camera's new tap starts this far back in the open segment file (recent_start)
RECENT_FILE_SECONDS = 1.5
# How often a version-3 stream's open segment file is read for its live tap: at most a frame's
# worth of added delay at 25 fps
FOLLOW_SECONDS = 0.04
FIND_START_LIMIT = 8 * 1024 * 1024  # bytes looked at for a keyframe before starting afresh


def wanted(live_dir: Path, now: float | None = None) -> bool:
    """Tell whether a browser asked for this camera's live view recently."""
    try:
        mtime = (live_dir / WANTED_MARK).stat().st_mtime
    except OSError:
        return False
    return (now if now is not None else time.time()) - mtime < WANTED_FRESH_SECONDS


def watched(live_root: Path, now: float | None = None) -> set[str]:
    """Return the cameras whose live view a browser asked for recently, from one folder scan.

    The hub asks ten times a second: one scan of the live root plus a stat per camera folder
    there (only cameras watched at some time have one) costs far less than a stat per recording
    camera (scripts/bench/hub_cpu.py).
    """
    now = time.time() if now is None else now
    try:
        entries = os.scandir(live_root)
    except OSError:
        return set()
    names = set()
    with entries:
        for entry in entries:
            try:
                mtime = os.stat(os.path.join(entry.path, WANTED_MARK)).st_mtime
            except OSError:
                continue
            if now - mtime < WANTED_FRESH_SECONDS:
                names.add(entry.name)
    return names


def clear(live_dir: Path, keep_mark: bool = True) -> None:
    """Remove the live pieces and playlist of a camera (the viewer's mark may stay)."""
    if not live_dir.exists():
        return
    for path in live_dir.iterdir():
        if keep_mark and path.name == WANTED_MARK:
            continue
        path.unlink(missing_ok=True)


class RecentBytes:
    """The last few seconds of a pushed camera's MPEG-TS, bounded in time and size."""

    def __init__(self, seconds: float = RECENT_SECONDS, limit: int = RECENT_BYTES) -> None:
        self.seconds, self.limit = seconds, limit
        self._chunks: collections.deque[tuple[float, bytes]] = collections.deque()
        self._size = 0

    def add(self, data: bytes, now: float | None = None) -> None:
        """Keep ``data``; forget what is older than the window or over the size limit."""
        now = time.monotonic() if now is None else now
        self._chunks.append((now, data))
        self._size += len(data)
        while self._chunks and (self._size > self.limit
                                or now - self._chunks[0][0] > self.seconds):
            self._size -= len(self._chunks.popleft()[1])

    def data(self) -> bytes:
        """Return the kept bytes, oldest first."""
        return b"".join(chunk for _, chunk in self._chunks)


class LiveTap:
    """One camera's live HLS writer: an ffmpeg fed a copy of the stream, or pulling itself."""

    def __init__(self, camera: str, live_dir: Path, url: str | None = None,
                 audio: str = "none") -> None:
        self.camera, self.live_dir, self.url = camera, live_dir, url
        self.audio = audio  # ffmpeg.LIVE_AUDIO_MODES: none, copy AAC, or make AAC of other sound
        self.proc: asyncio.subprocess.Process | None = None
        self.log = logger.getChild(camera)
        self.run_id = secrets.token_hex(3)
        self.ring = MseRing(live_dir, self.run_id)
        self._relay: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Spawn the tap's ffmpeg into a fresh live folder."""
        self.live_dir.mkdir(parents=True, exist_ok=True)
        clear(self.live_dir)
        # a short probe: ffmpeg's default (~5 s of input) would delay the first live piece
        head = [ffmpeg.ffmpeg_exe(), "-hide_banner", "-nostats", "-loglevel", "error",
                "-probesize", "500000", "-analyzeduration", "1000000"]
        input_fd = None if self.url is None else ffmpeg.open_hidden_input(self.url)
        if input_fd is None:
            source = ["-f", "mpegts", "-i", "pipe:0"]
        else:  # the URL on a pipe, as the segmenter's: never in ffmpeg's argv
            source = ["-nostdin", *ffmpeg.hidden_input_args(input_fd)]
        argv = [*head, *source, *ffmpeg.live_output(self.live_dir, self.run_id, self.audio),
                *ffmpeg.live_fmp4_output(self.audio)]
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *ffmpeg.with_parent_death_signal(argv, fed_by_hub=self.url is None),
                stdin=asyncio.subprocess.PIPE if self.url is None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
                pass_fds=() if input_fd is None else (input_fd,), start_new_session=True)
        finally:
            if input_fd is not None:
                os.close(input_fd)
        self.ring.start()
        self._relay = asyncio.create_task(self._relay_fragments(), name=f"live-{self.camera}")
        self.log.info("live view started (pid %d, sound: %s)", self.proc.pid, self.audio)

    async def _relay_fragments(self) -> None:
        """Split ffmpeg's fMP4 into boxes and hand them to the ring's writer thread."""
        assert self.proc is not None and self.proc.stdout is not None
        pending = b""
        try:
            while chunk := await self.proc.stdout.read(READ_CHUNK):
                boxes, pending = fmp4.split_boxes(pending + chunk)
                for box in boxes:
                    self.ring.put(box)
        except fmp4.BadBox as exc:  # not what ffmpeg writes: the HLS goes on without it
            self.log.warning("live view: unreadable fMP4 from ffmpeg (%s)", exc)

    @property
    def alive(self) -> bool:
        """Tell whether the tap's ffmpeg still runs."""
        return self.proc is not None and self.proc.returncode is None

    def feed(self, data: bytes) -> None:
        """Copy pushed bytes to the tap without ever waiting for it."""
        if not self.alive or self.proc is None or self.proc.stdin is None:
            return
        transport = self.proc.stdin.transport
        if transport.is_closing() or transport.get_write_buffer_size() > TAP_BUFFER_LIMIT:
            return  # a slow tap loses live pieces, never delays recording
        self.proc.stdin.write(data)

    async def stop(self) -> None:
        """Stop the tap's ffmpeg and remove its pieces (bounded: about STOP_TIMEOUT s at most)."""
        if self.alive and self.proc is not None:
            # A pushed tap's ffmpeg sits in read() on its stdin and does not wake up for
            # SIGTERM; it took the kill after the timeout, and the control loop (which also
            # writes every camera's status) waited that long per tap: with two cameras
            # watched, status went stale and every camera showed as "hub silent". End of
            # input stops it at once; SIGTERM (pulled taps) and SIGKILL are the fallbacks.
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            if not await self._exited(STOP_TIMEOUT / 2):
                with contextlib.suppress(ProcessLookupError):
                    self.proc.send_signal(signal.SIGTERM)
            if not await self._exited(STOP_TIMEOUT / 2):
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        if self._relay is not None:
            self._relay.cancel()
            await asyncio.gather(self._relay, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(None, self.ring.close)
        clear(self.live_dir)
        self.log.info("live view stopped")

    async def _exited(self, timeout: float) -> bool:
        assert self.proc is not None
        return await within(self.proc.wait(), timeout)


class FollowedStream(Protocol):
    """A version-3 camera's segmenter as its live view sees it (segmenter.Segmenter)."""

    @property
    def segment_pattern(self) -> Path | None:
        """The current run's segment files (``%06d`` numbered), None before ffmpeg starts."""

    def watch_live(self, watched: bool) -> None:
        """Make the stream flow frame by frame while watched (the edge's sends, ffmpeg's
        reads and writes), in batches otherwise."""


class DirectFeed:
    """Feeds a live tap from a version-3 stream, which the hub itself never reads.

    The camera's ffmpeg reads the edge's socket and writes each frame to its open segment file
    at once (``-segment_format_options flush_packets=1``); while someone watches, the edge and
    ffmpeg's reads go frame by frame too (``watch_live``). The feed reads what was appended
    to that file every FOLLOW_SECONDS and moves on to the next file when ffmpeg opens it: an
    exact copy of what is recorded, read only while watched. (Peeking at the socket ahead of
    ffmpeg, with SO_PEEK_OFF, lost the bytes that arrived just before each of ffmpeg's reads:
    20 % in a measurement.) The tap starts at a keyframe a second or two back in the open file
    (``recent_start``), or at the next one.
    """

    def __init__(self, stream: FollowedStream, tap: LiveTap) -> None:
        self.stream, self.tap = stream, tap
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start feeding the tap (on the event loop)."""
        self._task = asyncio.create_task(self._follow(), name=f"live-feed-{self.tap.camera}")

    async def stop(self) -> None:
        """Stop feeding, and let the stream go back to batches."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _follow(self) -> None:
        self.stream.watch_live(True)
        follower = SegmentFollower()
        finder: pts.StartFinder | None = pts.StartFinder()
        pending = bytearray()
        try:
            while self.tap.alive:
                data = follower.read(self.stream.segment_pattern)
                if data and finder is not None:  # until the first keyframe (see above)
                    pending += data
                    start = finder.feed(data)
                    if start is None and len(pending) > FIND_START_LIMIT:
                        finder, pending = pts.StartFinder(), bytearray()  # look on afresh
                    data = b"" if start is None else bytes(pending[start.offset:])
                    if start is not None:
                        finder, pending = None, bytearray()
                if data:
                    self.tap.feed(data)
                await asyncio.sleep(FOLLOW_SECONDS)
        except OSError as exc:  # the live view must never take recording down
            self.tap.log.error("live view: cannot follow the recording: %s", exc)
        finally:
            follower.close()
            self.stream.watch_live(False)


class SegmentFollower:
    """Reads a run's segment files as ffmpeg appends to them, one after the other."""

    def __init__(self) -> None:
        self._pattern: Path | None = None
        self._index = -1
        self._fd: int | None = None

    def read(self, pattern: Path | None) -> bytes:
        """What ffmpeg wrote since the last call; at first, the open file's last seconds from a
        keyframe on (``recent_start``), so the live view has a picture at once."""
        if pattern != self._pattern:  # a new run (or the first look): its newest file
            self.close()
            self._pattern = pattern
            self._index = self._newest(pattern) if pattern is not None else -1
            if self._index < 0 or not self._open():
                self._pattern = None  # look again next time
                return b""
            return recent_start(self._read_all())
        data = self._read_all()
        while self._next_exists():  # ffmpeg closed this file before it opened the next
            data += self._read_all()
            self._move_to(self._index + 1)
            data += self._read_all()
        if not data and self._pattern is not None:
            newest = self._newest(self._pattern)
            if newest > self._index + 1:  # the next one came and went unseen: skip ahead
                self._move_to(newest)
                data = self._read_all()
        return data

    def _move_to(self, index: int) -> None:
        self.close()
        self._index = index
        self._open()

    def close(self) -> None:
        """Close the open file, if any."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _path(self, index: int) -> str:
        assert self._pattern is not None
        return str(self._pattern) % index

    def _next_exists(self) -> bool:
        return self._pattern is not None and os.path.exists(self._path(self._index + 1))

    def _open(self) -> bool:
        try:  # a finished file may be moved into the storage meanwhile: the fd keeps reading
            self._fd = os.open(self._path(self._index), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return False
        return True

    def _read_all(self) -> bytes:
        if self._fd is None:
            return b""
        chunks = []
        while chunk := os.read(self._fd, READ_CHUNK):
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _newest(pattern: Path) -> int:
        prefix, _, suffix = pattern.name.partition("%06d")
        try:
            names = os.listdir(pattern.parent)
        except OSError:
            return -1
        found = [name[len(prefix):len(name) - len(suffix)] for name in names
                 if name.startswith(prefix) and name.endswith(suffix)]
        return max((int(n) for n in found if n.isdigit()), default=-1)


def recent_start(data: bytes, seconds: float = RECENT_FILE_SECONDS) -> bytes:
    """The end of an MPEG-TS file from the last start point (a PAT, its PMT, a keyframe) at
    least ``seconds`` before its last frame (else its first one); b"" if it has none.

    A version-3 camera's tap starts there, as a pushed camera's starts from ``RecentBytes``:
    its ffmpeg probes about 20 frames before it writes a first fragment, and with only the
    frames as they come that took 4 s (tests/browser/test_live_latency.py).
    """
    finder = pts.StartFinder(every=True)
    finder.feed(data)
    points, last = finder.found or [], finder.last_pts
    if not points or last is None:
        return b""
    chosen = points[0]
    for point in points:
        if pts.seconds((last - point.pts) % pts.PTS_WRAP) >= seconds:
            chosen = point
    return data[chosen.offset:]
