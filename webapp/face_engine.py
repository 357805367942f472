"""The face engine in the web app: one FaceEngine per process, built on first use, one photo at a
time (docs/design/faces.md, sections 4 and 5).

Enrollment from photos (`webapp.faces_service`) and face sign-in (`webapp.auth.face_signin`)
both go through here. dlib's engine is not documented as thread-safe and holds the GIL ~100 ms a
face, so the web app's threads take turns behind one lock (`find`, `one_face`); building it
loads ~30 MB of models (0.7-0.9 s), so it is built when the first photo arrives, not at
start-up. Without dlib or its models, `EngineMissing` (a 503) and everything else keeps working.

Uploaded pictures are decoded by `decode_photo`, which reads the size from the JPEG or PNG
header first: a small file can claim a huge picture (a few MB of JPEG can decode to gigabytes).
"""

from __future__ import annotations

import logging
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from flask import current_app, has_app_context

from nvrlib import faces

logger = logging.getLogger(__name__)

MAX_PHOTO_BYTES = 10 * 1024 * 1024  # one uploaded photo
MAX_PHOTO_SIDE = 2000  # pixels: a larger photo is shrunk first (a phone's 12 MP takes ~3 s)
MIN_FACE = faces.DEFAULT_MIN_SIZE
SAMPLE_CROP_SIZE = 160  # the crop kept with a sample, as the edges' sighting crops
# Pixels an uploaded picture may have (a 24-megapixel camera's photo); its decoded BGR copy is
# then at most ~72 MB. Larger ones are refused before OpenCV decodes anything.
MAX_PIXELS = 24_000_000
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (they carry the size): C0-CF but DHT (C4), JPG (C8) and DAC (CC).
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# JPEG markers without a length field: TEM, RST0-7 (and SOI, EOI, never inside the headers).
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})

_lock = threading.Lock()
_engines: dict[str, faces.FaceEngine] = {}  # by models folder ("" : the package's)


class EngineMissing(RuntimeError):
    """dlib or its model files are not installed here (the API's 503)."""


@dataclass(frozen=True)
class PhotoFace:
    """The one face of an enrolment photo: its embedding and a square JPEG crop."""

    embedding: np.ndarray
    crop: bytes
    size: int


class PhotoRefused(ValueError):
    """A photo that cannot be enrolled: not an image, no face, more than one (the API's 400)."""


def _engine() -> faces.FaceEngine:
    """Return this process's engine for the configured models folder (call with _lock held)."""
    folder = (current_app.config.get("FACE_MODELS") if has_app_context() else None) or ""
    engine = _engines.get(folder)
    if engine is None:
        try:
            engine = faces.FaceEngine(Path(folder) if folder else None)
        except ImportError as exc:
            raise EngineMissing(f"the face engine is not installed ({exc.name or exc})") from None
        except faces.ModelsMissing as exc:
            raise EngineMissing(f"the face engine is not installed: {exc}") from None
        _engines[folder] = engine
        logger.info("face engine loaded from %s", engine.model_files[0].parent)
    return engine


def get_engine() -> faces.FaceEngine:
    """Return this process's engine, loading it on first use; `EngineMissing` if it cannot.

    Use it through `find` (or under the lock): it is not safe from two threads at once."""
    with _lock:
        return _engine()


def find(image: np.ndarray, **options: Any) -> list[faces.Face]:
    """Run `FaceEngine.find` on one BGR image with this process's engine, one call at a time."""
    with _lock:
        return _engine().find(image, **options)


def shrink(image: np.ndarray, limit: int = MAX_PHOTO_SIDE) -> np.ndarray:
    """Return ``image`` scaled down so that its longer side is at most ``limit`` pixels."""
    height, width = image.shape[:2]
    longest = max(height, width)
    if longest <= limit:
        return image
    scale = limit / longest
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def one_face(data: bytes) -> PhotoFace:
    """Find the single face of an uploaded photo (JPEG or PNG bytes) and crop it.

    Raises PhotoRefused (not an image, no face of MIN_FACE pixels, several faces) and
    EngineMissing.
    """
    image = shrink(decode_photo(data))
    found = find(image, min_size=MIN_FACE)
    if not found:
        raise PhotoRefused(f"no face of at least {MIN_FACE} pixels was found in the photo: use "
                           "a sharp photo looking at the camera")
    if len(found) > 1:
        raise PhotoRefused(f"the photo shows {len(found)} faces: use a photo of one person "
                           "only (crop it)")
    face = found[0]
    return PhotoFace(face.embedding, faces.crop_jpeg(image, face.box, size=SAMPLE_CROP_SIZE),
                     face.size)


def image_size(data: bytes) -> tuple[int, int]:
    """Return (width, height) from a JPEG's or PNG's header; `PhotoRefused` for anything else."""
    if data.startswith(_PNG_SIGNATURE):
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise PhotoRefused("the PNG file is damaged")
        return struct.unpack(">II", data[16:24])
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    raise PhotoRefused("the file is not a JPEG or PNG image")


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """Walk the JPEG's marker segments up to its start-of-frame, which holds the size."""
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            break
        marker = data[at + 1]
        if marker == 0xFF:  # a fill byte before the marker
            at += 1
            continue
        if marker in _JPEG_STANDALONE:
            at += 2
            continue
        (length,) = struct.unpack(">H", data[at + 2:at + 4])
        if marker in _JPEG_SOF and length >= 7 and at + 9 <= len(data):
            height, width = struct.unpack(">HH", data[at + 5:at + 9])
            return width, height
        if length < 2 or marker == 0xDA:  # a bad length, or image data before any frame
            break
        at += 2 + length
    raise PhotoRefused("the JPEG file is damaged")


def decode_photo(data: bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode an uploaded JPEG or PNG to BGR, refusing damaged, empty or oversized pictures."""
    width, height = image_size(data)
    if width < 1 or height < 1:
        raise PhotoRefused("the picture has no pixels")
    if width * height > max_pixels:
        raise PhotoRefused(f"the picture is too large ({width}x{height}; at most "
                           f"{max_pixels // 1_000_000} megapixels)")
    try:
        return faces.decode_image(data)
    except ValueError:
        raise PhotoRefused("the file could not be decoded as an image") from None
