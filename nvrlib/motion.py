"""Motion detection shared by the edge and the hub (docs/design/motion.md).

- ``Detector``: grey, 160 px wide, blurred, against ``cv2.accumulateWeighted``'s average; a
  noise threshold and a minimum area from the sensitivity; mask polygons zeroed out. The same
  steps as Frigate's ``ImprovedMotionDetector`` (frigate/motion/improved_motion.py), without
  its contrast tricks.
- ``EventTracker``: an event starts after motion in ``START_SAMPLES`` consecutive samples,
  ends after ``END_QUIET`` seconds without, and a very long one is split every ``MAX_EVENT``
  seconds. It keeps the peak's score, box and picture (a JPEG snapshot, without the overlay).

The edge feeds it a few frames a second (edge/motion.py); the hub, for cameras without our
edge, the keyframes of each finished segment (recorder/supervise/keyframe_motion.py).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import secrets
from collections.abc import Callable

import cv2
import numpy as np

logger = logging.getLogger(__name__)

DETECT_WIDTH = 160  # the grey copy compared with the average
SNAPSHOT_WIDTH = 320  # the small copy compared (shrunk further) and, at the peak, the snapshot
JPEG_QUALITY = 70
BLUR = (5, 5)
AVERAGE_ALPHA = 0.1  # per sample: the background follows a change within ~2 s at 5 samples/s
START_SAMPLES = 2
END_QUIET = 3.0
MAX_EVENT = 60.0
DEFAULT_SENSITIVITY = 50
MAX_MASK_POLYGONS = 32
MAX_MASK_POINTS = 64


@dataclasses.dataclass(frozen=True)
class MotionSettings:
    """What the detector does: on or off, how sensitive (1-100), and where it looks away."""

    enabled: bool = True
    sensitivity: int = DEFAULT_SENSITIVITY
    mask: tuple[tuple[tuple[float, float], ...], ...] = ()  # polygons of (x, y) in 0..1
    updated_at: str | None = None  # the hub's motion_updated_at (None: never set by an admin)


class BadSettings(ValueError):
    """Motion settings that cannot be used; the message names the field."""


def settings_from_json(data: object) -> MotionSettings:
    """Validate the hub's ``{"enabled", "sensitivity", "mask", "updated_at"}`` object."""
    if not isinstance(data, dict):
        raise BadSettings("motion settings must be a JSON object")
    enabled = data.get("enabled", True)
    sensitivity = data.get("sensitivity", DEFAULT_SENSITIVITY)
    updated = data.get("updated_at")
    if not isinstance(enabled, bool):
        raise BadSettings("enabled must be true or false")
    if isinstance(sensitivity, bool) or not isinstance(sensitivity, int) or \
            not 1 <= sensitivity <= 100:
        raise BadSettings("sensitivity must be an integer 1-100")
    if updated is not None and not isinstance(updated, str):
        raise BadSettings("updated_at must be a string or null")
    return MotionSettings(enabled, sensitivity, parse_mask(data.get("mask", [])), updated)


def parse_mask(mask: object) -> tuple[tuple[tuple[float, float], ...], ...]:
    """Validate mask polygons: a list of lists of [x, y] in 0..1 (a JSON string is read too)."""
    if isinstance(mask, str):
        try:
            mask = json.loads(mask or "[]")
        except ValueError:
            raise BadSettings("mask is not valid JSON") from None
    if not isinstance(mask, list) or len(mask) > MAX_MASK_POLYGONS:
        raise BadSettings(f"mask must be a list of at most {MAX_MASK_POLYGONS} polygons")
    polygons = []
    for polygon in mask:
        if not isinstance(polygon, list) or not 3 <= len(polygon) <= MAX_MASK_POINTS:
            raise BadSettings(f"each mask polygon needs 3-{MAX_MASK_POINTS} points")
        polygons.append(tuple(_point(p) for p in polygon))
    return tuple(polygons)


def _point(point: object) -> tuple[float, float]:
    if not (isinstance(point, list) and len(point) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1
            for v in point)):
        raise BadSettings("each mask point must be [x, y] with x and y in 0..1")
    return float(point[0]), float(point[1])


def noise_threshold(sensitivity: int) -> int:
    """The grey-level change (0-255) a pixel needs to count as moved: 60 at 1, 8 at 100."""
    return round(float(np.interp(sensitivity, [1, 50, 100], [60, 25, 8])))


def min_area(sensitivity: int) -> float:
    """The share of the frame that must move for a sample to count: 5 % at 1, 0.05 % at 100."""
    return float(np.interp(sensitivity, [1, 50, 100], [0.05, 0.004, 0.0005]))


@dataclasses.dataclass(frozen=True)
class Sample:
    """What one comparison found: the share of the frame that moved, and its bounding box."""

    moved: bool
    score: float = 0.0
    box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # x, y, w, h in 0..1


def small_copy(image: np.ndarray) -> np.ndarray:
    """Return the SNAPSHOT_WIDTH-wide BGR copy the motion thread works on (area-averaged)."""
    height, width = image.shape[:2]
    size = (SNAPSHOT_WIDTH, max(2, round(height * SNAPSHOT_WIDTH / width)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


class Detector:
    """Compares each small grey copy with a running average of the earlier ones."""

    def __init__(self, settings: MotionSettings = MotionSettings()) -> None:
        self.settings = settings
        self._average: np.ndarray | None = None
        self._mask: np.ndarray | None = None  # 0 where motion is ignored (None: no mask)
        self._mask_size: tuple[int, int] | None = None

    def apply(self, settings: MotionSettings) -> None:
        """Use new settings from the next sample on (the average is kept)."""
        if settings.mask != self.settings.mask:
            self._mask, self._mask_size = None, None
        self.settings = settings

    def reset(self) -> None:
        """Forget the average (after a pause, the scene may have changed)."""
        self._average = None

    def compare(self, image: np.ndarray) -> Sample:
        """Return what moved in ``image`` (BGR or grey, any size) against the average."""
        grey = self._prepare(image)
        if self._average is None or self._average.shape != grey.shape:
            self._average = grey.astype(np.float32)
            return Sample(False)
        diff = cv2.absdiff(grey, cv2.convertScaleAbs(self._average))
        cv2.accumulateWeighted(grey, self._average, AVERAGE_ALPHA)
        _, moved = cv2.threshold(diff, noise_threshold(self.settings.sensitivity), 255,
                                 cv2.THRESH_BINARY)
        mask = self._mask_for(moved.shape)
        if mask is not None:
            moved = cv2.bitwise_and(moved, mask)
        moved = cv2.dilate(moved, None, iterations=1)  # join the pieces of one object
        return self._measure(moved)

    def _prepare(self, image: np.ndarray) -> np.ndarray:
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        height, width = grey.shape
        size = (DETECT_WIDTH, max(2, round(height * DETECT_WIDTH / width)))
        if (width, height) != size:
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        return cv2.GaussianBlur(grey, BLUR, 0)

    def _measure(self, moved: np.ndarray) -> Sample:
        height, width = moved.shape
        total = float(width * height)
        need = min_area(self.settings.sensitivity) * total
        contours, _ = cv2.findContours(moved, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        # a blob below a quarter of the minimum area is noise, whatever else moved
        kept = [c for c in contours if cv2.contourArea(c) >= need / 4]
        area = sum(cv2.contourArea(c) for c in kept)
        if not kept or area < need:
            return Sample(False, area / total)
        x, y, w, h = cv2.boundingRect(np.concatenate(kept))
        return Sample(True, min(1.0, area / total), (x / width, y / height, w / width, h / height))

    def _mask_for(self, shape: tuple[int, ...]) -> np.ndarray | None:
        if not self.settings.mask:
            return None
        height, width = shape[:2]
        if self._mask is None or self._mask_size != (width, height):
            mask = np.full((height, width), 255, np.uint8)
            for polygon in self.settings.mask:
                points = np.array([[round(x * (width - 1)), round(y * (height - 1))]
                                   for x, y in polygon], np.int32)
                cv2.fillPoly(mask, [points], 0)
            self._mask, self._mask_size = mask, (width, height)
        return self._mask


@dataclasses.dataclass
class MotionEvent:
    """One motion event as the edge reports it (``end`` None while it goes on)."""

    key: str
    start: float  # wall-clock seconds
    end: float | None = None
    score: float = 0.0
    box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    snapshot: bytes | None = None  # JPEG at the peak, without the overlay (sent at the end)

    def to_json(self, camera: str) -> dict[str, object]:
        """The body of ``POST /ingest/v1/<camera>/events`` (protocol.md), without the snapshot."""
        x, y, w, h = self.box
        return {"camera": camera, "event_key": self.key, "start": round(self.start, 3),
                "end": None if self.end is None else round(self.end, 3),
                "score": round(self.score, 4), "box": [round(v, 4) for v in (x, y, w, h)]}


class EventTracker:
    """Turns samples into events: start, peak, end (after END_QUIET), split at MAX_EVENT."""

    def __init__(self, report: Callable[[MotionEvent], None], *, start_samples: int = START_SAMPLES,
                 end_quiet: float = END_QUIET, max_event: float = MAX_EVENT,
                 run_id: str | None = None) -> None:
        self.report = report
        self.start_samples = start_samples
        self.end_quiet = end_quiet
        self.max_event = max_event
        self.run_id = run_id or secrets.token_hex(8)  # event keys: "<run>-<n>", unique per run
        self.current: MotionEvent | None = None
        self._count = 0
        self._streak: list[float] = []  # wall times of the consecutive moving samples so far
        self._last_motion = 0.0
        self._peak_image: np.ndarray | None = None

    def update(self, wall: float, sample: Sample, image: np.ndarray | None = None) -> None:
        """Take one sample taken at ``wall``; ``image`` is the copy it came from (for the peak)."""
        if self.current is not None and wall - self.current.start >= self.max_event:
            self._end(wall)  # a very long event is split; motion goes on in a new one
            if sample.moved:
                self._streak = [wall] * self.start_samples
        if not sample.moved:
            self._streak = []
            if self.current is not None and wall - self._last_motion >= self.end_quiet:
                self._end(self._last_motion)
            return
        self._last_motion = wall
        self._streak.append(wall)
        if self.current is None and len(self._streak) >= self.start_samples:
            self._begin(self._streak[-self.start_samples])
        if self.current is not None and sample.score > self.current.score:
            self.current.score, self.current.box = sample.score, sample.box
            self._peak_image = image

    def flush(self) -> None:
        """End an event that is going on (the stream stops)."""
        if self.current is not None:
            self._end(self._last_motion)

    def _begin(self, wall: float) -> None:
        self._count += 1
        self.current = MotionEvent(f"{self.run_id}-{self._count}", wall)
        self._peak_image = None
        self.report(dataclasses.replace(self.current))

    def _end(self, wall: float) -> None:
        event, self.current = self.current, None
        assert event is not None
        event.end = max(wall, event.start)
        if self._peak_image is not None:
            ok, jpeg = cv2.imencode(".jpg", self._peak_image,
                                    [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            event.snapshot = jpeg.tobytes() if ok else None
        self._peak_image = None
        self.report(event)
