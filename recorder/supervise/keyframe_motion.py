"""Motion for cameras without our edge: the hub looks at the keyframes of each finished segment.

A stock pusher or an RTSP camera reports no motion, so the hub finds it itself, as cheaply as it
can: one thread (``keyframe-motion``) takes each finished segment of such a camera, has PyAV
decode only its keyframes (``skip_frame = "NONKEY"``: about one picture a second with the usual
1-s GOP, and nothing else is decoded), scales them to 320 px and runs the edge's own detector
and event tracker on them (nvrlib/motion.py). A stream whose keyframes are further apart than
MAX_KEYFRAME_GAP (a stock ffmpeg's default GOP is 250 frames) has every frame decoded instead,
one picture a second kept: dearer, and the measured cost says so. Events are stored like an edge's (source ``hub``)
on the catalog thread. The price: motion is known when the segment closes (one segment length
late) and sampled once a second, against five times on the edge.

A camera whose edge reports motion (it asked for its motion settings or sent an event in the
last EDGE_FRESH seconds) is left to its edge. The thread's CPU time per camera is measured
(``time.thread_time``) and published by the health monitor (the ``motion`` check).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

from nvrlib.motion import (
    SNAPSHOT_WIDTH, BadSettings, Detector, EventTracker, MotionEvent, MotionSettings, parse_mask,
)
from recorder.store import motion as stored_motion
from recorder.store.catalog import Catalog, FinishedSegment
from recorder.store.motion import EventFields

logger = logging.getLogger(__name__)

EDGE_FRESH = 30.0  # seconds: an edge that spoke about motion this recently detects it itself
MAX_KEYFRAME_GAP = 2.0  # seconds: keyframes further apart, and every frame is decoded instead
SAMPLE_EVERY = 1.0  # seconds between the pictures kept then
QUEUE_SIZE = 256  # segments waiting; more are skipped (logged), recording never waits
UTC = dt.timezone.utc


@dataclasses.dataclass(frozen=True)
class SegmentJob:
    """One finished segment of a camera to look at, with the camera's settings at that time."""

    camera: str
    path: Path
    start: dt.datetime  # wall-clock time of the segment's first frame
    seconds: float  # its length
    settings: MotionSettings


@dataclasses.dataclass
class _Camera:
    detector: Detector
    tracker: EventTracker
    cpu_seconds: float = 0.0
    last_wall: float = 0.0  # the newest picture looked at (seconds since the epoch)
    dense: bool = False  # its keyframes are too far apart: decode every frame, keep 1 a second


class KeyframeMotion:
    """The thread that finds motion in finished segments; ``offer`` never blocks."""

    def __init__(self, report: Callable[[EventFields], None]) -> None:
        self.report = report
        self.jobs: queue.Queue[SegmentJob | None] = queue.Queue(QUEUE_SIZE)
        self.cameras: dict[str, _Camera] = {}
        self.started = time.monotonic()
        self.skipped = 0
        self._thread = threading.Thread(target=self._run, name="keyframe-motion", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def offer(self, job: SegmentJob) -> bool:
        """Queue a segment; False (and it is skipped) when the thread is that far behind."""
        try:
            self.jobs.put_nowait(job)
            return True
        except queue.Full:
            self.skipped += 1
            if self.skipped in (1, 10, 100) or self.skipped % 1000 == 0:
                logger.warning("keyframe motion is behind: %d segment(s) skipped so far",
                               self.skipped)
            return False

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the queued segments (up to ``timeout``), end the events going on, stop."""
        if not self._thread.is_alive():
            return
        try:
            self.jobs.put(None, timeout=timeout)
        except queue.Full:
            pass
        self._thread.join(timeout)

    def cpu_share(self) -> dict[str, float]:
        """Each camera's share of one core spent on its motion since the hub started."""
        elapsed = max(time.monotonic() - self.started, 1e-6)
        return {name: state.cpu_seconds / elapsed for name, state in sorted(self.cameras.items())}

    def _run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                break
            try:
                self._look_at(job)
            except Exception:  # a bad file must not end motion for every camera
                logger.exception("%s: keyframe motion failed on %s", job.camera, job.path.name)
        for state in self.cameras.values():
            state.tracker.flush()

    def _look_at(self, job: SegmentJob) -> None:
        began = time.thread_time()
        state = self._camera(job)
        if job.settings.enabled:
            for wall, image in self._pictures(state, job):
                if wall <= state.last_wall:
                    continue  # a segment looked at twice (recovered) adds nothing
                state.last_wall = wall
                state.tracker.update(wall, state.detector.compare(image), image)
        elif state.tracker.current is not None:
            state.tracker.flush()  # turned off by an admin: the event going on ends
        state.cpu_seconds += time.thread_time() - began

    @staticmethod
    def _pictures(state: _Camera, job: SegmentJob) -> list[tuple[float, np.ndarray]]:
        if not state.dense:
            pictures = keyframes(job.path, job.start)
            if not sparse(pictures, job.seconds):
                return pictures
            state.dense = True  # e.g. a stock ffmpeg pusher's 250-frame GOP
            logger.info("%s: keyframes are more than %g s apart: hub motion decodes every frame",
                        job.camera, MAX_KEYFRAME_GAP)
        return keyframes(job.path, job.start, every=SAMPLE_EVERY)

    def _camera(self, job: SegmentJob) -> _Camera:
        state = self.cameras.get(job.camera)
        if state is None:
            state = _Camera(Detector(job.settings), EventTracker(
                lambda event, camera=job.camera: self.report(found(camera, event))))
            self.cameras[job.camera] = state
        elif state.detector.settings != job.settings:
            state.detector.apply(job.settings)
        return state


def keyframes(path: Path, start: dt.datetime,
              every: float | None = None) -> list[tuple[float, np.ndarray]]:
    """Decode a segment's pictures: (wall-clock seconds, 320-px BGR picture).

    ``every`` None: the keyframes only (nothing else is decoded). Else every frame is decoded
    (a stream whose keyframes are too far apart) and one picture per ``every`` seconds kept.
    """
    pictures: list[tuple[float, np.ndarray]] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if every is None:
            stream.codec_context.skip_frame = "NONKEY"
        first: float | None = None
        for frame in container.decode(stream):
            if frame.time is None:
                continue
            first = frame.time if first is None else first
            offset = frame.time - first
            if every is not None and pictures and \
                    offset < pictures[-1][0] - start.timestamp() + every:
                continue
            height = max(2, round(frame.height * SNAPSHOT_WIDTH / frame.width))
            image = frame.to_ndarray(width=SNAPSHOT_WIDTH, height=height, format="bgr24")
            pictures.append((start.timestamp() + offset, image))
    return pictures


def sparse(pictures: list[tuple[float, np.ndarray]], segment_seconds: float) -> bool:
    """Tell whether keyframes come less often than every MAX_KEYFRAME_GAP seconds."""
    return len(pictures) < max(1.0, segment_seconds / MAX_KEYFRAME_GAP)


def found(camera: str, event: MotionEvent) -> EventFields:
    """The tracker's event as the catalog stores it, keyed apart from any edge's."""
    end = None if event.end is None else dt.datetime.fromtimestamp(event.end, UTC)
    return EventFields(camera, f"hub-{event.key}", dt.datetime.fromtimestamp(event.start, UTC),
                       end, event.score, event.box, event.snapshot, source="hub")


class SegmentMotion:
    """The hub's side: feeds KeyframeMotion from finished segments and stores what it finds.

    ``on_segment`` runs on the event loop and only hands work to the catalog thread, which reads
    the camera's motion settings and queues the segment; events found go back to the catalog
    thread to be stored, so the catalog keeps its single writer.
    """

    def __init__(self, catalog: Catalog, executor: concurrent.futures.Executor,
                 enabled: bool, on_stored: Callable[[], None] | None = None) -> None:
        self.catalog = catalog
        self.executor = executor
        self.on_stored = on_stored  # told after each stored event (the motion alerts run)
        self.worker = KeyframeMotion(self._report) if enabled else None
        self._edge_seen: dict[str, float] = {}

    def start(self) -> None:
        """Start the keyframe thread (if hub motion is on)."""
        if self.worker is not None:
            self.worker.start()
            logger.info("hub motion: on, for cameras whose edge does not report motion")

    def stop(self) -> None:
        """Finish what is queued and end the events going on (before the catalog thread ends)."""
        if self.worker is not None:
            self.worker.stop()

    def edge_spoke(self, camera: str) -> None:
        """Note that a camera's edge reported motion or asked for its motion settings."""
        self._edge_seen[camera] = time.monotonic()

    def edge_detects(self, camera: str) -> bool:
        """Tell whether a camera's own edge detects its motion (it spoke recently)."""
        return time.monotonic() - self._edge_seen.get(camera, -EDGE_FRESH) < EDGE_FRESH

    def on_segment(self, camera: str, segment: FinishedSegment) -> None:
        """Look at a finished segment's keyframes, unless its edge detects motion itself."""
        if self.worker is None or segment.deduplicated or self.edge_detects(camera):
            return
        self.executor.submit(self._queue, camera, segment.path, segment.start, segment.duration)

    def cpu_share(self) -> dict[str, float]:
        """Each camera's share of a core spent on hub motion since the hub started."""
        return self.worker.cpu_share() if self.worker is not None else {}

    def _queue(self, camera: str, path: Path, start: dt.datetime, seconds: float) -> None:
        found = stored_motion.camera_motion(self.catalog, camera)
        if found is None or found.hub_id != self.catalog.hub_id:
            return
        try:
            mask = parse_mask(found.mask)
        except BadSettings as exc:
            logger.warning("%s: motion mask ignored: %s", camera, exc)
            mask = ()
        settings = MotionSettings(found.enabled, found.sensitivity, mask)
        assert self.worker is not None
        self.worker.offer(SegmentJob(camera, path, start, seconds, settings))

    def _report(self, event: EventFields) -> None:
        try:
            self.executor.submit(self._store, event)
        except RuntimeError:  # the catalog thread has ended: the hub is gone
            logger.warning("%s: motion event %s not stored: the hub is stopping", event.camera,
                           event.event_key)

    def _store(self, event: EventFields) -> None:
        found = stored_motion.camera_motion(self.catalog, event.camera)
        if found is None:
            return
        stored_motion.store_event(self.catalog, event, found.camera_id)
        if self.on_stored is not None:
            self.on_stored()
