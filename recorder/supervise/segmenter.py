"""One camera's supervised ffmpeg segment muxer: spawn, feed, restart with back-off, stop."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime as dt
import fcntl
import itertools
import logging
import math
import os
import secrets
import signal
import time
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import Protocol

from nvrlib.catalog.models import utcnow
from recorder.store.catalog import Catalog, FinishedSegment, RunInfo
from recorder.store.reconcile import recover_run_leftovers
from recorder.supervise import ffmpeg, pts
from recorder.supervise.live import LiveTap, RecentBytes
from recorder.supervise.states import ProcessStateMachine, RestartPolicy, State
from recorder.supervise.waits import within

logger = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 10.0
PENDING_LIMIT_BYTES = 16 * 1024 * 1024
STDIN_PIPE_BYTES = 256 * 1024  # ffmpeg's stdin: a batch of an 8 Mbit/s camera (see widen_pipe)
# A pushed run starts once the bytes buffered for it hold a keyframe (pts.StartFinder), which
# comes within a GOP. It gives up on that after this much video without one (keyframes it cannot
# recognize: the shift is then taken from the first frame), or this long after the first bytes
# (a stream without readable PTS starts unshifted); before any byte comes it just waits.
KEYFRAME_SEARCH_SECONDS = 5.0
START_WAIT_SECONDS = 10.0
# How far below the first keyframe ffmpeg's shifted timeline starts: room for B-frames and audio
# a little behind it, and never past one segment (or the muxer would cut twice).
PTS_MARGIN_SECONDS = 1.0
DIRECT_PEEK_SECONDS = 0.05  # how often a direct stream's first bytes are looked at for a keyframe
# A direct run's ffmpeg sleeps in read() and SIGTERM does not wake it (its handler restarts the
# read): the edge's next bytes do, and ffmpeg stops at a packet boundary after a read or two
# (0.4-0.9 s measured with a batch every 0.5 s). A silent edge's socket is shut for reading
# after this long instead (ffmpeg then ends at whatever came last, maybe inside a frame).
DIRECT_STOP_GRACE_SECONDS = 3.0


class DirectInput(Protocol):
    """A version-3 stream's socket, read by ffmpeg itself (recorder.ingest.direct.DirectSocket)."""

    def peek(self) -> bytes:
        """What arrived and is not read yet, left in place."""

    def discard(self, count: int) -> int:
        """Read and forget the first ``count`` bytes."""

    def hand_over(self) -> int:
        """Make the socket ready for ffmpeg's reads; return its descriptor."""

    def received(self) -> int:
        """Bytes of the stream the kernel received."""

    def delivered(self) -> int:
        """Bytes of the stream read (by ffmpeg, or skipped before it started)."""

    def set_rate(self, bytes_per_second: float) -> None:
        """Let ffmpeg's reads wait for a batch of a stream this fast."""

    def end_input(self) -> None:
        """Make ffmpeg see the end of its input once it read what is queued."""

    def send_live(self, watched: bool) -> bool:
        """Tell the edge whether someone watches live; may raise OSError."""


@dataclasses.dataclass
class Anchor:
    """How a stream's PTS maps to wall-clock time; shared by the runs of one connection."""

    wall: dt.datetime
    pts: float | None
    exact: bool


@dataclasses.dataclass
class StreamStats:
    """Counters a stream exposes to logs, health checks and the web app."""

    bytes_in: int = 0
    frames: int = 0  # as counted by ffmpeg (-progress), summed over runs
    bytes_out: int = 0  # bytes ffmpeg wrote, summed over runs
    segments: int = 0
    bytes_dropped: int = 0
    last_segment_end: dt.datetime | None = None
    last_segment_at: float | None = None  # time.monotonic() when the last segment was cataloged
    last_data_at: float | None = None  # time.monotonic() when the edge last sent bytes
    created: float = dataclasses.field(default_factory=time.monotonic)  # the segmenter's start


class Segmenter:
    """Runs ffmpeg for one camera until stopped; restarts it when it dies."""

    def __init__(self, *, camera: str, location: str, kind: str, incoming_dir: Path,
                 segment_seconds: float, policy: RestartPolicy, catalog: Catalog,
                 catalog_executor: Executor, url: str | None = None, peer: str = "",
                 anchor: Anchor | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 pin_url: Callable[[str, int], str] | None = None) -> None:
        self.camera, self.location, self.kind = camera, location, kind
        self.url, self.peer = url, peer
        # a pulled camera's URL as this run's ffmpeg gets it: its host resolved and checked
        # once, then named by address (nvrlib.camera_urls.pinned_url); the int is the count
        # of runs in a row that recorded nothing, so each tries the host's next address
        self._pin_url = pin_url
        self._idle_runs = 0
        self.incoming_dir = incoming_dir
        self.segment_seconds = segment_seconds
        self.catalog, self.executor = catalog, catalog_executor
        self.anchor = anchor
        self.tap: LiveTap | None = None  # set while someone watches a pushed camera live
        self.recent = RecentBytes()  # where a pushed camera's next live tap starts from
        self.machine = ProcessStateMachine(policy, clock, name=camera)
        self.created_at = utcnow()
        self._restart_requested = False
        self.stats = StreamStats()
        self.stderr = ffmpeg.StderrRing()
        self.log = logger.getChild(camera)
        self.on_segment: list[Callable[[FinishedSegment], None]] = []
        # video a run could not record: it came before the first keyframe ffmpeg can start at
        self.on_skip: list[Callable[[str], None]] = []
        self._proc: asyncio.subprocess.Process | None = None
        self._pending: collections.deque[bytes] = collections.deque()
        self._pending_bytes = 0
        self._input_closed = False
        self._input_seen = asyncio.Event()  # bytes were buffered for ffmpeg, or input ended
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._run: RunInfo | None = None  # the run whose row is open in the catalog
        self._audio_codec: str | None = None  # what an earlier run's first segment showed
        self._catalog_jobs: set[asyncio.Future[object]] = set()
        # protocol version 3: ffmpeg reads the edge's socket itself, once (attach_direct)
        self.direct: DirectInput | None = None
        self.direct_expected = False  # set by the hub before start() for a version-3 request
        self.direct_ended = asyncio.Event()  # that one ffmpeg run is over
        self._rate_mark: tuple[float, int] | None = None
        self._watched_live = False  # a direct stream flows frame by frame meanwhile
        self._terminated: asyncio.subprocess.Process | None = None  # _stop_direct's ffmpeg

    # -- public API -------------------------------------------------------------------------

    def start(self) -> None:
        """Start supervising (spawns ffmpeg at once)."""
        self._task = asyncio.create_task(self._supervise(), name=f"segmenter-{self.camera}")

    @property
    def batch_seconds(self) -> float | None:
        """Relay a pushed stream at once while someone watches it live, else in batches."""
        return 0.0 if self.tap is not None else None

    @property
    def audio_codec(self) -> str | None:
        """The sound codec of this camera's newest probed segment ("" none; None not probed)."""
        if self._run is not None and self._run.audio_codec is not None:
            self._audio_codec = self._run.audio_codec  # kept for the runs after this one
        return self._audio_codec

    def attach_direct(self, direct: DirectInput) -> None:
        """Give this (pushed) camera's ffmpeg the edge's socket as its input (version 3)."""
        self.direct = direct
        self._input_seen.set()
        if self._watched_live:  # watched from before the socket came
            self.watch_live(True)

    @property
    def segment_pattern(self) -> Path | None:
        """The current run's segment files (``%06d`` numbered), None between runs."""
        run = self._run
        return None if run is None else ffmpeg.incoming_pattern(self.incoming_dir, run.run_id)

    def watch_live(self, watched: bool) -> None:
        """A direct stream flows frame by frame while watched: the edge sends each frame at
        once, and ffmpeg reads it at once (its writes always are, for live.DirectFeed)."""
        self._watched_live = watched
        if self.direct is None:
            return
        if watched:
            self.direct.set_rate(0)
        with contextlib.suppress(OSError):  # the edge is gone: its stream ends on its own
            self.direct.send_live(watched)

    def poll_direct(self) -> None:
        """Update a direct stream's byte counters and its read batching from the kernel's."""
        if self.direct is None:
            return
        now, received = time.monotonic(), self.direct.received()
        if received > (self._rate_mark[1] if self._rate_mark else 0):
            self.stats.last_data_at = now
        self.stats.bytes_in = self.direct.delivered()
        if self._rate_mark is not None and now - self._rate_mark[0] >= 1.9:
            rate = (received - self._rate_mark[1]) / (now - self._rate_mark[0])
            self.direct.set_rate(0 if self._watched_live else rate)
            self._rate_mark = (now, received)
        elif self._rate_mark is None:
            self._rate_mark = (now, received)

    async def feed(self, data: bytes) -> None:
        """Pass MPEG-TS bytes to ffmpeg; buffer them (bounded) while it restarts."""
        self.stats.bytes_in += len(data)
        self.stats.last_data_at = time.monotonic()
        if self.kind == "push":
            self.recent.add(data)
        if self.tap is not None:
            self.tap.feed(data)
        proc = self._proc
        if proc is not None and proc.returncode is None and not self._pending:
            try:
                proc.stdin.write(data)  # type: ignore[union-attr]
                await proc.stdin.drain()  # type: ignore[union-attr]
                return
            except (BrokenPipeError, ConnectionResetError):
                self.log.warning("ffmpeg stopped taking input; buffering until it restarts")
        self._buffer(data)

    async def finish(self) -> None:
        """End of input: let ffmpeg finish the open segment, then wait for everything."""
        self._input_closed = True
        self._input_seen.set()
        proc = self._proc
        if self.direct is not None:
            if proc is not None and proc.returncode is None:
                self.machine.stopping()
                self._stop_direct()
        elif proc is not None and proc.stdin is not None and not self._pending:
            self.machine.stopping()
            proc.stdin.close()
        self._wake.set()
        await self._wait_bounded()
        self.poll_direct()

    async def stop(self) -> None:
        """Stop ffmpeg cleanly (the open segment is finished) and wait for the catalog."""
        self._stop.set()
        self._wake.set()
        self._input_seen.set()
        if self._proc is not None and self._proc.returncode is None:
            self.machine.stopping()
            self._terminate()
        await self._wait_bounded()

    async def _wait_bounded(self) -> None:
        # ffmpeg finishes a segment in well under a second; one that hangs (a dead RTSP
        # server mid-handshake) is escalated, so shutdown always completes.
        for signum in (signal.SIGTERM, signal.SIGKILL):
            if await within(self.wait(), STOP_GRACE_SECONDS):
                return
            self.log.warning("ffmpeg did not stop within %.0f s: sending %s",
                             STOP_GRACE_SECONDS, signal.Signals(signum).name)
            self._stop.set()
            self._wake.set()
            self._signal(signum)
        await self.wait()

    async def restart(self) -> None:
        """Restart ffmpeg now (its open segment is finished first), without back-off."""
        if self._proc is not None and self._proc.returncode is None:
            self._restart_requested = True
            self._terminate()  # a direct request ends with its ffmpeg: the edge reconnects
        else:
            self._wake.set()  # cut a back-off or a FAILED wait short

    async def wait(self) -> None:
        """Wait until supervision ended and every listed segment is cataloged (never raises)."""
        if self._task is None:
            return
        try:
            await asyncio.shield(self._task)
        except Exception:  # _supervise guards itself; a connection must still be released
            self.log.exception("supervision ended with an error")

    @property
    def restart_requested(self) -> bool:
        """Tell whether the current ffmpeg is being restarted on request (not dying)."""
        return self._restart_requested

    @property
    def state(self) -> State:
        """The ffmpeg's current state."""
        return self.machine.state

    @property
    def pid(self) -> int | None:
        """The current ffmpeg's process id, if one runs."""
        return self._proc.pid if self._proc and self._proc.returncode is None else None

    # -- supervision loop ------------------------------------------------------------------

    async def _supervise(self) -> None:
        try:
            while not self._stop.is_set():
                if self._input_closed and not self._pending:
                    break  # input ended while ffmpeg was backing off (or failed): nothing to write
                try:
                    delay = await self._cycle()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a bug or a resource shortage must not end supervision
                    delay = await self._supervision_failed(exc)
                if delay is None:
                    break
                await self._sleep(delay)
        finally:
            if self._pending_bytes:
                self.log.warning("%d buffered bytes were never recorded", self._pending_bytes)
            if self.machine.state is not State.STOPPED:
                self.machine.stopping()
            await self._drain_catalog()

    async def _cycle(self) -> float | None:
        """Run ffmpeg once; return the delay before the next run, or None to end supervision."""
        returncode, run = await self._one_run()
        if self.direct is not None:  # its socket is spent: one run per direct request
            if returncode == 0 and not self._restart_requested:
                self.machine.stopping()  # ffmpeg read the end of the stream: a normal end
            self._input_closed = True
            self.direct_ended.set()
        delay = self.machine.exited(returncode, made_progress=run.entries > 0)
        self._idle_runs = 0 if run.entries else self._idle_runs + 1
        await self._end_run(run.run_id, returncode)
        if self.anchor is not None and self.anchor.pts is None:
            self.anchor = None  # nothing learned: the next run anchors at its own start
        if self._input_closed and self._pending and returncode is not None:
            return 0.0  # ffmpeg died with input still buffered: write it out first
        if self._restart_requested:
            self._restart_requested = False
            self.log.info("ffmpeg restarted on request")
            return None if delay is None or self._input_closed else 0.0
        if delay is None:
            return None
        # an ffmpeg death is worth its stderr even when it also ended a v2 edge's request
        self._log_exit(returncode, "the request ended" if self._input_closed
                       else f"restart in {delay:.0f} s")
        return None if self._input_closed else delay

    async def _supervision_failed(self, exc: Exception) -> float | None:
        """Survive an unexpected error: stop a stray ffmpeg, close the run, go FAILED, retry."""
        self.log.error("supervision failed (%s: %s); the camera is FAILED", type(exc).__name__,
                       exc, exc_info=exc)
        self.stderr.add(f"hub error: {type(exc).__name__}: {exc}")
        self._restart_requested = False
        await self._kill_stray()
        run, self._run = self._run, None
        if run is not None:
            try:
                await self._end_run(run.run_id, None, reason="hub error")
            except Exception as again:  # the catalog may be what fails; recovery runs at start-up
                self.log.error("cannot close run %s: %s", run.run_id, again)
        delay = self.machine.crashed(f"{type(exc).__name__}: {exc}")
        if delay is None or self._stop.is_set() or self._input_closed:
            return None
        self.log.warning("retrying in %.0f s (or at once on Restart)", delay)
        return delay

    async def _kill_stray(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        self._signal(signal.SIGKILL)
        if not await within(proc.wait(), STOP_GRACE_SECONDS):
            self.log.error("ffmpeg pid %d survived SIGKILL", proc.pid)

    async def _one_run(self) -> tuple[int | None, RunInfo]:
        run = self._new_run(await self._pts_offset())
        if self.direct_expected and (self.direct is None or self._input_closed
                                     or self._stop.is_set()):
            return 0, run  # the request ended before its first keyframe: nothing to record
        await self._run_in_catalog(self.catalog.start_run, run, self.kind, self.peer)
        self._run = run
        self.machine.starting()
        fds: list[int] = []
        try:
            url = await self._run_url()
        except ValueError as exc:  # its host is local now, or resolves to nothing
            self._failed_start(f"cannot pull: {exc}")
            return None, run
        try:
            # pipes and the spawn need descriptors: a shortage is a failed start, not a crash
            read_fd, write_fd = os.pipe()
            fds += [read_fd, write_fd]
            progress_read, progress_write = os.pipe()
            fds += [progress_read, progress_write]
            input_fd = None if url is None else ffmpeg.open_hidden_input(url)
            child_fds = [write_fd, progress_write] + ([input_fd] if input_fd is not None else [])
            fds += child_fds[2:]
            argv = self._argv(run, write_fd, progress_write, input_fd)
            self._proc = await asyncio.create_subprocess_exec(
                *ffmpeg.with_parent_death_signal(argv, fed_by_hub=self.kind != "pull",
                                                 direct=self.direct is not None),
                stdin=self._stdin(),
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
                pass_fds=child_fds, start_new_session=True)
        except (OSError, ffmpeg.UnsafeUrl) as exc:
            for fd in fds:
                os.close(fd)
            self._failed_start(f"cannot start ffmpeg: {exc}")
            return None, run
        for fd in child_fds:
            os.close(fd)
        if self._proc.stdin is not None:
            widen_pipe(self._proc.stdin)
        self.log.info("ffmpeg started (pid %d, run %s)", self._proc.pid, run.run_id)
        if self._stop.is_set():  # stop() came while we were spawning: it could not signal us
            self.machine.stopping()
            self._signal(signal.SIGTERM)
        return await self._watch(self._proc, run, read_fd, progress_read), run

    def _stdin(self) -> int:
        if self.kind == "pull":
            return asyncio.subprocess.DEVNULL
        if self.direct is not None:
            return self.direct.hand_over()
        return asyncio.subprocess.PIPE

    async def _pts_offset(self) -> float:
        """Seconds to shift this run's timeline back by, so that its first keyframe is near 0."""
        if self.kind != "push":
            return 0.0  # ffmpeg starts each RTSP session's clock at 0
        finder = await (self._find_direct_start() if self.direct_expected
                        else self._find_start())
        if finder.start is not None:
            # start the new ffmpeg at that PAT: what came before it is frames ffmpeg would drop
            # and audio that would land before the shifted 0
            if finder.first_pts is not None and finder.first_pts != finder.start.pts:
                self._skipped(finder.first_pts, finder.start.pts)
            if self.direct is not None:
                self.direct.discard(finder.start.offset)
            else:
                self._drop_pending_head(finder.start.offset)
            ticks: int | None = finder.start.pts
        else:
            ticks = finder.first_pts
            self.log.warning("no keyframe found in %.1f s of video: the shift is taken from the "
                             "first frame, the first segments may be short", finder.searched())
        if ticks is None:
            self.log.debug("no PTS in the first bytes: ffmpeg runs on the stream's clock")
            return 0.0
        margin = min(PTS_MARGIN_SECONDS, self.segment_seconds / 2)
        offset = max(math.floor((pts.seconds(ticks) - margin) * 1000) / 1000, 0.0)
        if offset:
            self.log.info("first keyframe at %.3f s: this run shifts the stream back by %.3f s",
                          pts.seconds(ticks), offset)
        return offset

    async def _find_start(self) -> pts.StartFinder:
        """Wait until the bytes buffered for the new ffmpeg hold its first keyframe (bounded)."""
        # Everything fed from now on is buffered for the new ffmpeg, in order: its first
        # keyframe is in there (a PTS read from bytes the last ffmpeg got is up to a GOP early).
        loop = asyncio.get_running_loop()
        deadline: float | None = None  # counted from the first byte: a silent sender is waited for
        finder, scanned, dropped = pts.StartFinder(), 0, self.stats.bytes_dropped
        while True:
            self._input_seen.clear()
            if self.stats.bytes_dropped != dropped:  # the oldest bytes are gone: scan anew
                finder, scanned, dropped = pts.StartFinder(), 0, self.stats.bytes_dropped
            for chunk in itertools.islice(self._pending, scanned, None):
                finder.feed(chunk)
                scanned += 1
            if deadline is None and self._pending:
                deadline = loop.time() + START_WAIT_SECONDS
            remaining = None if deadline is None else deadline - loop.time()
            if (finder.start is not None or finder.searched() >= KEYFRAME_SEARCH_SECONDS
                    or self._stop.is_set() or self._input_closed
                    or (remaining is not None and remaining <= 0)):
                return finder
            await within(self._input_seen.wait(), remaining)

    async def _find_direct_start(self) -> pts.StartFinder:
        """As _find_start, on the bytes waiting in a direct stream's socket (peeked, not read)."""
        # The hub gets no wake-up for a socket it does not read: it looks a few times a
        # second, for about a GOP, once per request.
        while self.direct is None and not (self._stop.is_set() or self._input_closed):
            self._input_seen.clear()
            await self._input_seen.wait()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_WAIT_SECONDS
        finder, scanned = pts.StartFinder(), 0
        while self.direct is not None:
            data = self.direct.peek()
            if len(data) > scanned:
                finder.feed(data[scanned:])
                scanned = len(data)
            if (finder.start is not None or finder.searched() >= KEYFRAME_SEARCH_SECONDS
                    or self._stop.is_set() or self._input_closed or loop.time() >= deadline):
                break
            await within(self._stop.wait(), DIRECT_PEEK_SECONDS)
        return finder

    def _skipped(self, first_pts: int, start_pts: int) -> None:
        what = (f"{pts.seconds((start_pts - first_pts) % pts.PTS_WRAP):.2f} s of video before "
                f"the first keyframe with a PAT and PMT (PTS {pts.seconds(start_pts):.3f} s) "
                "cannot be recorded")
        self.log.warning("%s", what)
        for callback in self.on_skip:
            callback(what)

    def _drop_pending_head(self, count: int) -> None:
        """Forget the first ``count`` buffered bytes."""
        while count and self._pending:
            chunk = self._pending.popleft()
            self._pending_bytes -= len(chunk)
            if len(chunk) > count:
                self._pending.appendleft(chunk[count:])
                self._pending_bytes += len(chunk) - count
                return
            count -= len(chunk)

    def _new_run(self, pts_offset: float = 0.0) -> RunInfo:
        if self.kind == "pull":
            # Each RTSP session has its own clock, and ffmpeg starts it at 0 with the first
            # RTP packet, which arrives about now.
            self.anchor = Anchor(wall=utcnow(), pts=0.0, exact=False)
        elif self.anchor is None:
            # A pusher without X-NVR-Stream-Epoch: its first frame arrived about now.
            self.anchor = Anchor(wall=utcnow(), pts=None, exact=False)
        # the run's anchor is in its own (shifted) timeline, like its files and list lines
        anchor_pts = None if self.anchor.pts is None else self.anchor.pts - pts_offset
        return RunInfo(run_id=secrets.token_hex(4), camera=self.camera, location=self.location,
                       anchor_wall=self.anchor.wall, anchor_pts=anchor_pts,
                       anchor_exact=self.anchor.exact, pts_offset=pts_offset)

    async def _run_url(self) -> str | None:
        """The URL this run's ffmpeg pulls (None for a pushed camera); may raise ValueError."""
        if self.kind != "pull":
            return None
        assert self.url is not None
        if self._pin_url is None:
            return self.url
        # a name's resolution may block: not on the event loop
        return await asyncio.get_running_loop().run_in_executor(
            None, self._pin_url, self.url, self._idle_runs)

    def _failed_start(self, message: str) -> None:
        """Log why a run could not start (its exit status is None: a failed start)."""
        self.log.error("%s", message)
        self.stderr.add(message)

    def _argv(self, run: RunInfo, list_fd: int, progress_fd: int,
              input_fd: int | None = None) -> list[str]:
        pattern = ffmpeg.incoming_pattern(self.incoming_dir, run.run_id)
        if self.kind == "pull":
            assert input_fd is not None
            return ffmpeg.pull_segmenter_argv(input_fd, pattern, self.segment_seconds, list_fd,
                                              progress_fd)
        return ffmpeg.push_segmenter_argv(pattern, self.segment_seconds, list_fd, progress_fd,
                                          pts_offset=run.pts_offset,
                                          flush_each_frame=self.direct_expected)

    async def _watch(self, proc: asyncio.subprocess.Process, run: RunInfo, list_fd: int,
                     progress_fd: int) -> int:
        stderr_task = asyncio.create_task(self._read_stderr(proc))
        list_task = asyncio.create_task(self._read_segment_list(list_fd, run))
        progress_task = asyncio.create_task(self._read_progress(progress_fd))
        await self._write_pending(proc)
        if self._input_closed and not self._pending and proc.stdin is not None:
            self.machine.stopping()
            proc.stdin.close()
        promote = asyncio.get_running_loop().call_later(
            self.machine.policy.startsecs, self.machine.maybe_running)
        try:
            returncode = await proc.wait()
        finally:
            promote.cancel()
            await asyncio.gather(stderr_task, list_task, progress_task)
        self.machine.maybe_running()
        return returncode

    async def _read_stderr(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        async for raw in proc.stderr:
            self.stderr.add(raw.decode("utf-8", "replace"))

    async def _read_progress(self, fd: int) -> None:
        base_frames, base_bytes = self.stats.frames, self.stats.bytes_out
        async for raw in _pipe_lines(fd):
            entry = ffmpeg.parse_progress_line(raw.decode("utf-8", "replace"))
            if entry is None or not entry[1].isdigit():
                continue
            if entry[0] == "frame":
                self.stats.frames = base_frames + int(entry[1])
            elif entry[0] == "total_size":
                self.stats.bytes_out = base_bytes + int(entry[1])

    async def _read_segment_list(self, fd: int, run: RunInfo) -> None:
        async for raw in _pipe_lines(fd):
            entry = ffmpeg.parse_segment_list_line(raw.decode("utf-8", "replace"))
            if entry is None:
                self.log.warning("unexpected segment list line %r", raw[:200])
                continue
            self._schedule_catalog(run, *entry)

    def _schedule_catalog(self, run: RunInfo, name: str, start: float, end: float) -> None:
        future = asyncio.ensure_future(self._run_in_catalog(
            self.catalog.finish_segment, run, self.incoming_dir / name, start, end))
        self._catalog_jobs.add(future)
        future.add_done_callback(lambda done: self._segment_done(done, run))

    def _segment_done(self, future: asyncio.Future[object], run: RunInfo) -> None:
        self._catalog_jobs.discard(future)
        if future.cancelled():
            return
        if future.exception() is not None:
            self.log.error("cataloging a segment failed: %s", future.exception())
            return
        segment = future.result()
        if isinstance(segment, FinishedSegment):
            self.stats.segments += 1
            self.stats.last_segment_end = segment.end
            self.stats.last_segment_at = time.monotonic()
            if self.anchor is not None and self.anchor.pts is None and run.anchor_pts is not None:
                # later runs of this connection share the clock mapping the first one learned,
                # kept in the stream's own timeline (each run shifts it by its own offset)
                self.anchor = Anchor(wall=run.anchor_wall, pts=run.anchor_pts + run.pts_offset,
                                     exact=False)
            for callback in self.on_segment:
                callback(segment)

    async def _run_in_catalog(self, func: Callable[..., object], *args: object) -> object:
        return await asyncio.get_running_loop().run_in_executor(self.executor, func, *args)

    async def _drain_catalog(self) -> None:
        if self._catalog_jobs:
            await asyncio.gather(*self._catalog_jobs, return_exceptions=True)

    async def _end_run(self, run_id: str, returncode: int | None, reason: str = "") -> None:
        reason = reason or ("stopped" if self.machine.state is State.STOPPED
                            else f"exit {returncode}")
        await self._drain_catalog()
        await self._run_in_catalog(self.catalog.end_run, run_id, reason)
        self._run = None
        # an ffmpeg killed mid-segment leaves its open file behind: recover it right away
        report = await self._run_in_catalog(recover_run_leftovers, self.catalog, self.camera, run_id)
        self.stats.segments += len(report.recovered)  # type: ignore[attr-defined]

    # -- helpers -----------------------------------------------------------------------------

    def _buffer(self, data: bytes) -> None:
        self._pending.append(data)
        self._pending_bytes += len(data)
        self._input_seen.set()
        while self._pending_bytes > PENDING_LIMIT_BYTES and self._pending:
            dropped = self._pending.popleft()
            self._pending_bytes -= len(dropped)
            self.stats.bytes_dropped += len(dropped)

    async def _write_pending(self, proc: asyncio.subprocess.Process) -> None:
        if proc.stdin is None:
            return
        try:
            while self._pending:
                chunk = self._pending.popleft()
                self._pending_bytes -= len(chunk)
                proc.stdin.write(chunk)
                await proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            self.log.warning("ffmpeg died while taking buffered input")

    async def _sleep(self, delay: float) -> None:
        self._wake.clear()
        await within(self._wake.wait(), delay)

    def _signal(self, signum: int) -> None:
        if self._proc is not None and self._proc.returncode is None:
            try:
                self._proc.send_signal(signum)
            except ProcessLookupError:
                pass

    def _terminate(self) -> None:
        if self.direct is not None:
            self._stop_direct()
        else:
            self._signal(signal.SIGTERM)

    def _stop_direct(self) -> None:
        """SIGTERM a direct run's ffmpeg once; shut its socket for reading if it still sleeps.

        Once: ffmpeg stops between two packets after its next read. A second SIGTERM makes it
        abort that read, and its demuxer then writes out the frame it was in, torn.
        """
        if self.direct is None or self._proc is None or self._terminated is self._proc:
            return
        self._terminated = self._proc
        self._signal(signal.SIGTERM)
        self.direct.set_rate(0)  # its next read returns with whatever came: no batch to wait for
        asyncio.get_running_loop().call_later(DIRECT_STOP_GRACE_SECONDS, self.direct.end_input)

    def _log_exit(self, returncode: int | None, then: str) -> None:
        tail = "\n    ".join(self.stderr.tail(8))
        self.log.warning("ffmpeg exited (%s), %s; %s; last output:\n    %s",
                         returncode, self.machine.state.value, then, tail)


def widen_pipe(stdin: asyncio.StreamWriter) -> None:
    """Let ffmpeg's stdin pipe hold a whole batch, so one write per batch never waits.

    A pipe holds 64 KiB by default, less than half a second of a 2 Mbit/s camera: each batch
    then took several wake-ups of the hub. Best effort: past the user's pipe-buffer quota
    (/proc/sys/fs/pipe-user-pages-soft) Linux refuses, and the default size still works.
    """
    pipe = stdin.get_extra_info("pipe")
    if pipe is None or not hasattr(fcntl, "F_SETPIPE_SZ"):
        return
    with contextlib.suppress(OSError):
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, STDIN_PIPE_BYTES)


async def _pipe_lines(fd: int):  # type: ignore[no-untyped-def]
    """Yield the lines a child writes on a pipe until it closes it."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0))
    try:
        async for raw in reader:
            yield raw
    finally:
        transport.close()
