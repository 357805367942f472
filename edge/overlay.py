"""Burn the local date, time, time zone, location and camera name into the top-left corner."""

from __future__ import annotations

import datetime
import logging

import cv2
import numpy as np

logger = logging.getLogger(__name__)

FONT = cv2.FONT_HERSHEY_SIMPLEX
REFERENCE_HEIGHT = 720  # sizes below are for 720 lines and scale with the frame
FONT_SCALE = 0.8
MARGIN = 12
PADDING = 8
LINE_GAP = 10
BOX_SHADE = 0.5  # the scene behind the text keeps half its brightness

Rect = tuple[int, int, int, int]  # x, y, width, height


def overlay_lines(wall: float, location: str, camera: str) -> tuple[str, str]:
    """Return the two overlay lines: local time with zone, and location / camera."""
    local = datetime.datetime.fromtimestamp(wall).astimezone()
    # Hershey fonts draw ASCII only; the CLI already keeps location and names ASCII.
    return local.strftime("%Y-%m-%d %H:%M:%S %Z %z"), f"{location} / {camera}"


def overlay_rect(width: int, height: int, lines: tuple[str, ...]) -> Rect:
    """Return the (x, y, w, h) box the overlay covers in a width x height frame."""
    scale, thickness, _ = _metrics(height)
    pad, margin = _px(PADDING, height), _px(MARGIN, height)
    sizes = [cv2.getTextSize(line, FONT, scale, thickness) for line in lines]
    text_w = max(w for (w, _), _ in sizes)
    text_h = sum(h + base for (_, h), base in sizes) + _px(LINE_GAP, height) * (len(lines) - 1)
    w = min(width - margin, text_w + 2 * (pad + _metrics(height)[2]))
    h = min(height - margin, text_h + 2 * pad)
    return margin, margin, w, h


class Overlay:
    """One camera's overlay; the drawn box is cached while the text stays the same (1 s)."""

    def __init__(self, location: str, camera: str) -> None:
        self.location = location
        self.camera = camera
        self._key: tuple[int, int, tuple[str, ...]] | None = None
        self._rect: Rect = (0, 0, 0, 0)
        self._gain = np.empty(0, np.uint16)
        self._offset = np.empty(0, np.uint16)

    def draw(self, image: np.ndarray, wall: float) -> Rect:
        """Burn the overlay for wall-clock time ``wall`` into BGR ``image``; return its box."""
        height, width = image.shape[:2]
        key = (width, height, overlay_lines(wall, self.location, self.camera))
        if key != self._key:
            self._prepare(*key)
        x, y, w, h = self._rect
        roi = image[y : y + h, x : x + w]
        # Drawing is linear in the scene behind it (out = scene * gain + offset), so the
        # text is rasterised once a second and each frame costs a multiply-add over the box.
        mixed = roi.astype(np.uint16)
        mixed *= self._gain
        mixed >>= 8
        mixed += self._offset
        roi[...] = mixed
        return self._rect

    def _prepare(self, width: int, height: int, lines: tuple[str, ...]) -> None:
        self._key = (width, height, lines)
        self._rect = overlay_rect(width, height, lines)
        text = _text_mask(self._rect, lines, height)
        size = 2 * _metrics(height)[2] + 1
        outline = cv2.dilate(text, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
        text_a = text.astype(np.float32)[..., None] / 255
        outline_a = outline.astype(np.float32)[..., None] / 255
        # The scene dimmed in the box (it shows through, and white text stays legible on a
        # white scene), a black outline (the dilated text) for contrast, white text on top.
        gain = BOX_SHADE * (1 - outline_a) * (1 - text_a)
        self._gain = np.round(gain * 256).astype(np.uint16)
        self._offset = np.round(255 * text_a).astype(np.uint16)


def draw_overlay(image: np.ndarray, wall: float, location: str, camera: str) -> Rect:
    """Burn time, location and camera into ``image`` (BGR, in place); return the box used."""
    return Overlay(location, camera).draw(image, wall)


def _text_mask(rect: Rect, lines: tuple[str, ...], frame_height: int) -> np.ndarray:
    """Return the anti-aliased text of ``lines`` as a 0-255 mask the size of the box."""
    _, _, w, h = rect
    mask = np.zeros((h, w), np.uint8)
    scale, thickness, outline_px = _metrics(frame_height)
    pad, gap = _px(PADDING, frame_height), _px(LINE_GAP, frame_height)
    baseline_y = pad
    for line in lines:
        (_, text_h), base = cv2.getTextSize(line, FONT, scale, thickness)
        baseline_y += text_h
        origin = (pad + outline_px, baseline_y)
        cv2.putText(mask, line, origin, FONT, scale, 255, thickness, cv2.LINE_AA)
        baseline_y += base + gap
    return mask


def _metrics(height: int) -> tuple[float, int, int]:
    """Return font scale, stroke thickness and outline offset for a frame ``height`` tall."""
    scale = FONT_SCALE * height / REFERENCE_HEIGHT
    thickness = max(1, round(2 * height / REFERENCE_HEIGHT))
    return scale, thickness, max(1, round(2 * height / REFERENCE_HEIGHT))


def _px(size: int, height: int) -> int:
    return max(1, round(size * height / REFERENCE_HEIGHT))


OVERLAY_HOLD = 1.0  # seconds a face's box stays drawn after the result that found it
FACE_BOX_COLOUR = (0, 255, 255)  # BGR yellow: stands out from the white time stamp


class FaceBoxes:
    """The last faces found (``--faces-overlay``): a labelled box each, held OVERLAY_HOLD s.

    ``show`` runs in the faces thread, ``draw`` in the encoder thread: the boxes are swapped
    as one tuple, so the encoder never waits and never sees half a list.
    """

    def __init__(self, hold: float = OVERLAY_HOLD) -> None:
        self.hold = hold
        self._shown: tuple[float, tuple[tuple[tuple[int, int, int, int], str], ...]] = (0.0, ())

    def show(self, boxes: list[tuple[int, int, int, int]], labels: list[str],
             monotonic: float) -> None:
        """Draw these boxes (pixels of the frame) with their labels until ``monotonic`` + hold."""
        self._shown = (monotonic + self.hold, tuple(zip(boxes, labels)))

    def draw(self, image: np.ndarray, monotonic: float) -> int:
        """Burn the boxes still held into BGR ``image``; return how many were drawn."""
        until, faces = self._shown
        if monotonic >= until:
            return 0
        height = image.shape[0]
        scale, thickness, _ = _metrics(height)
        line = max(2, thickness)
        for (x, y, w, h), label in faces:
            cv2.rectangle(image, (x, y), (x + w, y + h), FACE_BOX_COLOUR, line)
            (_, text_h), base = cv2.getTextSize(label, FONT, scale, thickness)
            above = y - base - line
            origin = (x, above if above - text_h >= 0 else y + h + text_h + line)
            cv2.putText(image, label, origin, FONT, scale, FACE_BOX_COLOUR, thickness, cv2.LINE_AA)
        return len(faces)
