"""Motion detection on the edge (docs/design/motion.md).

The encoder thread hands a copy of a frame, taken *before* the overlay is burned in (so the
clock never counts as motion), to this module a few times a second; a thread of its own
shrinks it, compares it with a running average and turns what moved into events:

- ``Detector`` and ``EventTracker`` (nvrlib/motion.py, shared with the hub's keyframe motion):
  the comparison with a running average, and samples turned into events with their peak.
- ``MotionWorker``: the thread, fed through a one-slot buffer that never blocks the encoder.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import cv2
import numpy as np

# the detector and event tracker are shared with the hub; re-exported for the edge's callers
from nvrlib.motion import (  # noqa: F401
    AVERAGE_ALPHA, BLUR, DEFAULT_SENSITIVITY, DETECT_WIDTH, END_QUIET, JPEG_QUALITY, MAX_EVENT,
    MAX_MASK_POINTS, MAX_MASK_POLYGONS, SNAPSHOT_WIDTH, START_SAMPLES, BadSettings, Detector,
    EventTracker, MotionEvent, MotionSettings, Sample, min_area, noise_threshold, parse_mask,
    settings_from_json, small_copy,
)

logger = logging.getLogger(__name__)

SAMPLES_PER_SECOND = 5.0
HANDOVER_WIDTH = 640  # at least: the encoder thread's copy (see handover_copy)
# Faces are looked for while there is motion: until this long after a sample that moved
# (one sample, not the START_SAMPLES that open an event: that would add 200 ms).
FACES_AFTER_MOTION = 2.0


def handover_copy(image: np.ndarray) -> np.ndarray:
    """Return the copy the encoder thread hands over: at most HANDOVER_WIDTH wide, cheaply.

    Nearest-neighbour (every 2nd pixel of a 1280-px frame) takes about a third of the time of
    a full-size copy or an area resize (~1 ms at 720p under load); the motion thread then
    averages it down to SNAPSHOT_WIDTH, which is where the noise is smoothed.
    """
    height, width = image.shape[:2]
    factor = width // HANDOVER_WIDTH
    if factor <= 1:
        return image.copy()
    return cv2.resize(image, (width // factor, height // factor), interpolation=cv2.INTER_NEAREST)


class MotionWorker(threading.Thread):
    """Runs the detector on copies the encoder offers, never making the encoder wait."""

    def __init__(self, camera: str, settings: MotionSettings,
                 report: Callable[[MotionEvent], None], stop: threading.Event, *,
                 rate: float = SAMPLES_PER_SECOND, log: logging.Logger | None = None) -> None:
        super().__init__(name=f"motion-{camera}", daemon=True)
        self.stop = stop
        self.period = 1.0 / rate
        self.log = log or logger.getChild(camera)
        self.detector = Detector(settings)
        self.tracker = EventTracker(report)
        self.samples = 0
        self.moving_until = 0.0  # monotonic: the faces gate (read by the encoder thread)
        self._settings = settings
        self._pending: MotionSettings | None = None
        self._next_due = 0.0
        self._cond = threading.Condition()
        self._slot: tuple[float, np.ndarray] | None = None
        self._finished = False

    @property
    def settings(self) -> MotionSettings:
        """The settings in force (or about to be, at the next sample)."""
        return self._pending or self._settings

    def apply(self, settings: MotionSettings) -> None:
        """Take new settings (from the hub); the motion thread switches at its next sample."""
        with self._cond:
            self._pending = settings
            self._cond.notify_all()

    def offer(self, image: np.ndarray, monotonic: float, wall: float) -> bool:
        """Hand a frame over if a sample is due (call before the overlay); True if taken."""
        if monotonic < self._next_due or not self.settings.enabled or self._finished:
            return False
        due = self._next_due + self.period  # on a grid; after a pause, a new grid from now
        self._next_due = due if due > monotonic else monotonic + self.period
        copy = handover_copy(image)  # the encoder draws the overlay on ``image`` next
        with self._cond:
            self._slot = (wall, copy)  # an unread older copy is replaced, never queued
            self._cond.notify_all()
        return True

    def finish(self) -> None:
        """End the thread after its last sample; an open event is reported as ended."""
        with self._cond:
            self._finished = True
            self._cond.notify_all()

    def run(self) -> None:
        """Compare each copy as it comes, until finish() or stop."""
        try:
            while (item := self._take()) is not None:
                self._process(*item)
        except Exception:  # motion is a bonus: recording goes on without it
            self.log.exception("motion detection failed; it is off until the edge restarts")
            self._finished = True  # the encoder stops copying frames for it
        finally:
            self.tracker.flush()

    def _take(self) -> tuple[float, np.ndarray] | None:
        with self._cond:
            while True:
                self._switch_settings()
                if self._slot is not None:
                    item, self._slot = self._slot, None
                    return item
                if self._finished or self.stop.is_set():
                    return None
                self._cond.wait(0.5)

    def _switch_settings(self) -> None:
        if self._pending is None:
            return
        settings, self._pending = self._pending, None
        if settings != self._settings:
            self.log.info("motion settings: %s, sensitivity %d, %d mask zone(s)",
                          "on" if settings.enabled else "off", settings.sensitivity,
                          len(settings.mask))
        if not settings.enabled:
            self.tracker.flush()
            self.detector.reset()
        self._settings = settings
        self.detector.apply(settings)

    def _process(self, wall: float, image: np.ndarray) -> None:
        if not self._settings.enabled:
            return
        self.samples += 1
        small = small_copy(image)
        sample = self.detector.compare(small)
        if sample.moved:
            self.moving_until = time.monotonic() + FACES_AFTER_MOTION
        self.tracker.update(wall, sample, small)
