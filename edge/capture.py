"""Frame sources (OpenCV captures and a synthetic test pattern), pacing and the frame slot."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Protocol

import cv2
import numpy as np

from .backoff import Backoff, Outage
from .cli import StreamConfig
from .errors import SourceError
from .sources import DEVICE, FILE, TEST

logger = logging.getLogger(__name__)

OPEN_TIMEOUT_MS = 10_000
READ_TIMEOUT_MS = 10_000
MAX_FILE_FPS = 240.0
# SMPTE-like bars (BGR), so a test stream shows colour, contrast and motion at a glance.
_BARS = np.array(
    [[192, 192, 192], [0, 192, 192], [192, 192, 0], [0, 192, 0],
     [192, 0, 192], [0, 0, 192], [192, 0, 0], [16, 16, 16]],
    dtype=np.float32,
)


@dataclasses.dataclass(frozen=True)
class Frame:
    """A BGR image stamped with the capture clock (time.monotonic) and wall-clock time."""

    image: np.ndarray
    monotonic: float
    wall: float


class FrameSource(Protocol):
    """Anything that yields stamped frames until it ends or ``stop`` is set."""

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        """Yield frames; return at the end of the source."""

    def close(self) -> None:
        """Release the device, file or connection."""


def quiet_opencv() -> None:
    """Keep OpenCV's own warnings (backend probing noise) out of the edge's log."""
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def stamp(image: np.ndarray) -> Frame:
    """Wrap ``image`` in a Frame stamped now on both clocks."""
    return Frame(image, time.monotonic(), time.time())


class Pacer:
    """Wait for deadlines 1/fps apart on the monotonic clock: no drift, no catch-up burst."""

    def __init__(self, fps: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.period = 1.0 / fps
        self._clock = clock
        self._next: float | None = None

    def wait(self, stop: threading.Event) -> bool:
        """Sleep until the next deadline; return False if ``stop`` was set meanwhile."""
        now = self._clock()
        if self._next is None:
            self._next = now
        delay = self._next - now
        if delay > 0 and stop.wait(delay):
            return False
        if delay < -self.period:
            self._next = now  # more than a frame late: restart the grid rather than burst
        self._next += self.period
        return not stop.is_set()


class RateLimiter:
    """Pass at most ``fps`` frames per second of capture time, dropping the surplus evenly."""

    def __init__(self, fps: float) -> None:
        self.period = 1.0 / fps
        self._due: float | None = None

    def admit(self, monotonic: float) -> bool:
        """Tell whether a frame captured at ``monotonic`` should be kept."""
        # 20 % slack so a source running at exactly --fps with jitter loses no frames.
        if self._due is not None and monotonic < self._due - 0.2 * self.period:
            return False
        due = self._due if self._due is not None else monotonic
        self._due = due + self.period if monotonic - due < self.period else monotonic + self.period
        return True


class SyntheticSource:
    """A test scene made with numpy and OpenCV, needing no hardware: still colour bars, and a box
    that bounces for the first MOVE_SECONDS of every CYCLE_SECONDS and then rests, so that the
    demo camera shows what motion detection finds (and a still scene finds nothing)."""

    CYCLE_SECONDS = 30.0
    MOVE_SECONDS = 8.0

    def __init__(self, width: int, height: int, fps: float) -> None:
        self.width = width
        self.height = height
        self.fps = fps
        self._background = _bars_background(width, height)
        self._step = max(2, width // 160)

    def render(self, index: int) -> np.ndarray:
        """Return frame number ``index``: the bars, and the box where it is at that moment."""
        image = self._background.copy()
        box = max(8, self.height // 6)
        moved = self._moving_frames(index)
        x = _bounce(moved * self._step * 2, self.width - box)
        y = _bounce(moved * self._step, self.height - box)
        cv2.rectangle(image, (x, y), (x + box, y + box), (255, 255, 255), -1)
        cv2.rectangle(image, (x, y), (x + box, y + box), (0, 0, 0), max(2, box // 16))
        return image

    def _moving_frames(self, index: int) -> int:
        """How many frames the box has moved for by frame ``index`` (it rests between bursts)."""
        per_cycle = max(1, round(self.CYCLE_SECONDS * self.fps))
        moving = round(self.MOVE_SECONDS * self.fps)
        cycles, within = divmod(index, per_cycle)
        return cycles * moving + min(within, moving)

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        """Yield frames paced at fps in real time until ``stop`` is set."""
        pacer = Pacer(self.fps)
        index = 0
        while pacer.wait(stop):
            yield stamp(self.render(index))
            index += 1

    def close(self) -> None:
        """Nothing to release."""


class OpenCVSource:
    """A V4L2 camera, a video file or a network stream read with OpenCV, resized to --size."""

    def __init__(self, config: StreamConfig) -> None:
        self.config = config
        self.source = config.source
        self._cap = _open_capture(config)
        self.fps = self._pace_fps()

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        """Yield frames; a file is paced at its own rate and loops or ends as configured."""
        pacer = Pacer(self.fps) if self.source.kind == FILE else None
        while not stop.is_set():
            if pacer is not None and not pacer.wait(stop):
                return
            frame = self._read()
            if frame is None and self.source.kind == FILE and self.config.loop:
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                frame = self._read()
            if frame is None:
                if self.source.kind == FILE:
                    return
                raise SourceError(f"{self.source.display()} stopped delivering frames")
            yield frame

    def close(self) -> None:
        """Release the capture."""
        self._cap.release()

    def _read(self) -> Frame | None:
        # Stamp between grab and retrieve: grab returns when the frame arrived, retrieve
        # then spends time decoding it.
        if not self._cap.grab():
            return None
        monotonic, wall = time.monotonic(), time.time()
        ok, image = self._cap.retrieve()
        if not ok or image is None:
            return None
        return Frame(fit(image, self.config.width, self.config.height), monotonic, wall)

    def _pace_fps(self) -> float:
        fps = self._cap.get(cv2.CAP_PROP_FPS) if self.source.kind == FILE else 0.0
        return fps if 0 < fps <= MAX_FILE_FPS else self.config.fps


def fit(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Return a BGR ``image`` resized to width x height (unchanged if it already fits)."""
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[1] == width and image.shape[0] == height:
        return image
    shrinking = image.shape[1] > width
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def open_source(config: StreamConfig) -> FrameSource:
    """Open the source of ``config``; raise SourceError if it cannot be opened."""
    if config.source.kind == TEST:
        return SyntheticSource(config.width, config.height, config.fps)
    return OpenCVSource(config)


def _open_capture(config: StreamConfig) -> cv2.VideoCapture:
    source = config.source
    if source.kind == DEVICE:
        target = source.index if source.index is not None else source.value
        cap = cv2.VideoCapture(target, cv2.CAP_V4L2)
    else:
        # An explicit backend: OpenCV's fallback image-sequence backend would print the
        # name (with any URL credentials) in its warnings.
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS,
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS]
        cap = cv2.VideoCapture(source.value, cv2.CAP_FFMPEG, params)
    if not cap.isOpened():
        cap.release()
        raise SourceError(f"cannot open {source.kind} {source.display()}")
    if source.kind == DEVICE:
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, config.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, config.height)
        cap.set(cv2.CAP_PROP_FPS, config.fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # hand over the newest frame, not a stale one
    return cap


def _bars_background(width: int, height: int) -> np.ndarray:
    bars = _BARS[(np.arange(width) * len(_BARS)) // width]
    shade = np.linspace(1.0, 0.45, height, dtype=np.float32)[:, None, None]
    return (bars[None, :, :] * shade).astype(np.uint8)


def _bounce(position: int, span: int) -> int:
    span = max(1, span)
    position %= 2 * span
    return position if position < span else 2 * span - position


class LatestFrame:
    """A one-frame slot between capture and encoding: a newer frame replaces an unread one."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._ended = False
        self.error: Exception | None = None
        self.dropped = 0

    def put(self, frame: Frame) -> None:
        """Offer a frame; an unread older one is dropped (the uplink is slower than capture)."""
        with self._cond:
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self._cond.notify_all()

    def end(self, error: Exception | None = None) -> None:
        """Mark the source finished (``error`` if it failed); a pending frame is still read."""
        with self._cond:
            self._ended = True
            self.error = self.error or error
            self._cond.notify_all()

    def get(self, timeout: float) -> Frame | None:
        """Take the newest frame, waiting up to ``timeout``; None on timeout or at the end."""
        with self._cond:
            self._cond.wait_for(lambda: self._frame is not None or self._ended, timeout)
            frame, self._frame = self._frame, None
            return frame

    @property
    def ended(self) -> bool:
        """Tell whether the source finished and its last frame was taken."""
        with self._cond:
            return self._ended and self._frame is None


def run_capture(
    config: StreamConfig, slot: LatestFrame, stop: threading.Event, log: logging.Logger
) -> None:
    """Feed ``slot`` from the source until stop or its end; cameras and URLs are reopened."""
    try:
        _capture_loop(config, slot, stop, log)
    except SourceError as exc:
        log.error("camera failed: %s", exc)
        slot.end(exc)
    except Exception as exc:  # a thread must report, not vanish: the worker ends the stream
        log.exception("capture crashed")
        slot.end(exc)
    finally:
        slot.end()


def _capture_loop(
    config: StreamConfig, slot: LatestFrame, stop: threading.Event, log: logging.Logger
) -> None:
    # Files and the test pattern fail for good; a camera or URL may come back, so retry it.
    retry = config.source.kind not in (FILE, TEST)
    backoff, outage = Backoff(), Outage(log, f"camera {config.source.display()}")
    limiter = RateLimiter(config.fps)
    while not stop.is_set():
        try:
            _pump(open_source(config), slot, stop, limiter, outage, backoff)
            return  # the file ended, or stop was set
        except SourceError as exc:
            if not retry:
                raise
            outage.failed(str(exc))
            stop.wait(backoff.next_delay())


def _pump(
    source: FrameSource, slot: LatestFrame, stop: threading.Event, limiter: RateLimiter,
    outage: Outage, backoff: Backoff,
) -> None:
    """Move frames from an open source into the slot until it ends or stop is set."""
    try:
        for frame in source.frames(stop):
            if outage.active:
                outage.recovered()
                backoff.reset()
            if limiter.admit(frame.monotonic):
                slot.put(frame)
    finally:
        source.close()
