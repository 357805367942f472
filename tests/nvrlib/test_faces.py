"""The face engine on real photos: one person is recognised across photos, others are not,
boxes are where the faces are (also after a downscaled detection), and embeddings survive the
catalog's bytes and the edge's JSON exactly."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from nvrlib import faces
from nvrlib.faces import Box, FaceEngine
from tests.support.face_photos import missing_reason, photos_dir
from tests.support.requirements import require

require(missing_reason(), module_level=True,
        remedy="fetch them with scripts/fetch-face-photos.sh; scripts/test.sh does")

ROOT = Path(__file__).resolve().parents[2]
SAME_PERSON = ["obama.jpg", "obama2.jpg", "obama3.jpg"]
OTHER_PEOPLE = ["biden.jpg", "astronaut.png"]
FRAME_W, FRAME_H = 1280, 720
PASTE_AT = (800, 250)  # where the face photo goes in the 1280x720 frame
PASTE_SCALE = 0.8


LOAD_SECONDS: list[float] = []  # how long loading the engine took, for the timings test


@pytest.fixture(scope="module")
def engine() -> FaceEngine:
    started = time.perf_counter()
    loaded = FaceEngine()
    LOAD_SECONDS.append(time.perf_counter() - started)
    return loaded


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return {name: cv2.imread(str(photos_dir() / name)) for name in SAME_PERSON + OTHER_PEOPLE}


@pytest.fixture(scope="module")
def found(engine: FaceEngine, photos: dict[str, np.ndarray]) -> dict[str, list[faces.Face]]:
    """Each photo's faces, found once for the whole module (detected at 800 wide: quicker)."""
    return {name: engine.find(image, detect_width=800) for name, image in photos.items()}


def embedding(found: dict[str, list[faces.Face]], name: str) -> np.ndarray:
    (face,) = found[name]  # every photo shows exactly one face
    return face.embedding


def pasted_frame(photo: np.ndarray, box: Box) -> tuple[np.ndarray, Box]:
    """A grey 1280x720 frame with the photo's face (and some margin) pasted in, and its box."""
    margin = 80
    region = photo[box.y - margin:box.y + box.h + margin, box.x - margin:box.x + box.w + margin]
    region = cv2.resize(region, None, fx=PASTE_SCALE, fy=PASTE_SCALE,
                        interpolation=cv2.INTER_AREA)
    frame = np.full((FRAME_H, FRAME_W, 3), 90, np.uint8)
    x, y = PASTE_AT
    frame[y:y + region.shape[0], x:x + region.shape[1]] = region
    expected = Box(round(x + margin * PASTE_SCALE), round(y + margin * PASTE_SCALE),
                   round(box.w * PASTE_SCALE), round(box.h * PASTE_SCALE))
    return frame, expected


def overlap(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    w = min(a.x + a.w, b.x + b.w) - max(a.x, b.x)
    h = min(a.y + a.h, b.y + b.h) - max(a.y, b.y)
    inter = max(0, w) * max(0, h)
    return inter / (a.w * a.h + b.w * b.h - inter)


def test_the_same_person_on_different_photos_is_within_threshold_and_matched(found) -> None:
    gallery = {"obama": [embedding(found, "obama.jpg")], "biden": [embedding(found, "biden.jpg")]}
    for name in ("obama2.jpg", "obama3.jpg"):
        result = faces.match(embedding(found, name), gallery)
        assert result.person == "obama", (name, result)
        assert result.distance < faces.MATCH_THRESHOLD
        assert result.distance == pytest.approx(
            faces.distance(embedding(found, name), embedding(found, "obama.jpg")))


def test_other_people_are_not_matched(found) -> None:
    gallery = {7: [embedding(found, name) for name in SAME_PERSON]}  # ids of any kind
    for name in OTHER_PEOPLE:
        result = faces.match(embedding(found, name), gallery)
        assert result.person is None, (name, result)
        assert result.distance > faces.MATCH_THRESHOLD, (name, result)


def test_an_empty_gallery_matches_nobody(found) -> None:
    assert faces.match(embedding(found, "obama.jpg"), {}) == faces.Match(None, math.inf)
    assert faces.match(embedding(found, "obama.jpg"), {"nobody": []}).person is None


def test_a_test_pattern_has_no_face(engine: FaceEngine) -> None:
    bars = np.zeros((FRAME_H, FRAME_W, 3), np.uint8)
    colours = [(255, 255, 255), (0, 255, 255), (255, 255, 0), (0, 255, 0), (255, 0, 255),
               (0, 0, 255), (255, 0, 0), (0, 0, 0)]
    for i, colour in enumerate(colours):
        bars[:480, i * 160:(i + 1) * 160] = colour
    bars[480:] = np.linspace(0, 255, FRAME_W, dtype=np.uint8)[None, :, None]
    assert engine.find(bars) == []
    assert engine.find(cv2.cvtColor(bars, cv2.COLOR_BGR2GRAY)) == []  # grayscale is taken too


def test_boxes_lie_inside_the_image_also_for_a_face_cut_by_the_edge(
        engine: FaceEngine, photos, found) -> None:
    for name, image in photos.items():
        (face,) = found[name]
        assert face.embedding.dtype == np.float32 and face.embedding.shape == (128,)
        assert face.score > 0 and face.size == min(face.box.w, face.box.h) >= 60
        assert inside(face.box, image), (name, face.box)
    whole = found["obama.jpg"][0].box
    cut = np.ascontiguousarray(photos["obama.jpg"][:, whole.x + whole.w // 4:])  # a quarter off
    (face,) = engine.find(cut)
    assert face.box.x == 0 and inside(face.box, cut)


def inside(box: Box, image: np.ndarray) -> bool:
    height, width = image.shape[:2]
    return box.x >= 0 and box.y >= 0 and box.x + box.w <= width and box.y + box.h <= height


def test_a_face_in_a_720p_frame_is_found_with_and_without_downscaling(
        engine: FaceEngine, photos, found) -> None:
    frame, expected = pasted_frame(photos["obama.jpg"], found["obama.jpg"][0].box)
    gallery = {"obama": [embedding(found, "obama2.jpg")]}
    for detect_width in (None, 640):
        (face,) = engine.find(frame, detect_width=detect_width)
        assert overlap(face.box, expected) > 0.75, (detect_width, face.box, expected)
        assert faces.match(face.embedding, gallery).person == "obama", detect_width


def test_faces_under_min_size_are_dropped(engine: FaceEngine, photos, found) -> None:
    frame, expected = pasted_frame(photos["obama.jpg"], found["obama.jpg"][0].box)
    assert engine.find(frame, detect_width=640, min_size=expected.w * 2) == []


def test_bad_images_are_refused_with_a_clear_error(engine: FaceEngine) -> None:
    with pytest.raises(ValueError, match="uint8"):
        engine.find(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ValueError, match="BGR"):
        engine.find(np.zeros((10, 10, 4), np.uint8))
    with pytest.raises(ValueError, match="detect_width"):
        engine.find(np.zeros((10, 10, 3), np.uint8), detect_width=0)
    with pytest.raises(ValueError, match="decode"):
        faces.decode_image(b"not a photo")


def test_importing_the_module_loads_no_dlib() -> None:
    """The hub stores and compares embeddings without dlib: only FaceEngine() imports it."""
    script = "import sys, nvrlib.faces; assert 'dlib' not in sys.modules, 'dlib imported'"
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]


def test_missing_models_are_named(tmp_path: Path) -> None:
    with pytest.raises(faces.ModelsMissing, match="shape_predictor_5_face_landmarks"):
        FaceEngine(tmp_path)


def test_the_68_point_landmark_model_is_never_loaded(engine: FaceEngine) -> None:
    """Its training data (iBUG 300-W) excludes commercial use: no code may name it."""
    assert [path.name for path in engine.model_files] == [faces.SHAPE_MODEL,
                                                          faces.RECOGNITION_MODEL]
    pattern = re.compile(r"68_face_landmarks|pose_predictor_model_location")
    naming = [str(path.relative_to(ROOT)) for top in ("nvrlib", "edge", "recorder", "webapp")
              for path in (ROOT / top).rglob("*.py") if pattern.search(path.read_text())]
    assert naming == []


@pytest.mark.parametrize("size", [112, 64])
def test_crop_jpeg_is_a_decodable_square_of_the_asked_size(photos, found, size: int) -> None:
    image = photos["obama.jpg"]
    for box in (found["obama.jpg"][0].box, Box(0, 0, 50, 80)):  # the second runs over an edge
        crop = faces.crop_jpeg(image, box, size=size)
        assert crop[:2] == b"\xff\xd8"
        decoded = cv2.imdecode(np.frombuffer(crop, np.uint8), cv2.IMREAD_COLOR)
        assert decoded.shape == (size, size, 3)
        assert faces.decode_image(crop).shape == (size, size, 3)
    with pytest.raises(ValueError, match="size"):
        faces.crop_jpeg(image, Box(0, 0, 10, 10), size=0)
    with pytest.raises(ValueError, match="inside"):  # never a huge black border for a stray box
        faces.crop_jpeg(image, Box(10 ** 6, 0, 10, 10))


def test_a_real_embedding_survives_bytes_and_json_exactly(found) -> None:
    vector = embedding(found, "obama.jpg")
    data = faces.embedding_to_bytes(vector)
    assert len(data) == faces.EMBEDDING_BYTES == 512
    assert np.array_equal(faces.embedding_from_bytes(data), vector)
    through_json = json.loads(json.dumps(faces.embedding_to_json(vector)))
    back = faces.embedding_from_json(through_json)
    assert back.dtype == np.float32 and np.array_equal(back, vector)


FINITE_FLOAT32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
BAD_VALUES = st.one_of(st.text(max_size=3), st.booleans(), st.none(), st.just([1.0]),
                       st.sampled_from([math.nan, math.inf, -math.inf, 1e39, -(10 ** 400)]))


@settings(max_examples=100, deadline=None)
@given(arrays(np.float32, 128, elements=FINITE_FLOAT32))
def test_any_finite_embedding_round_trips(vector: np.ndarray) -> None:
    assert np.array_equal(faces.embedding_from_bytes(faces.embedding_to_bytes(vector)), vector)
    text = json.dumps(faces.embedding_to_json(vector))
    assert np.array_equal(faces.embedding_from_json(json.loads(text)), vector)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=1100).filter(lambda data: len(data) != 512))
def test_bytes_of_another_length_are_refused(data: bytes) -> None:
    with pytest.raises(ValueError, match="512 bytes"):
        faces.embedding_from_bytes(data)


def one_bad_value(at_and_value: tuple[int, object]) -> list[object]:
    at, value = at_and_value
    return [0.5] * at + [value] + [0.5] * (127 - at)


@settings(max_examples=100, deadline=None)
@given(st.one_of(
    st.integers(0, 300).filter(lambda n: n != 128).map(lambda n: [0.5] * n),
    st.tuples(st.integers(0, 127), BAD_VALUES).map(one_bad_value),
    st.dictionaries(st.text(max_size=3), st.floats(), max_size=3),
    st.text(max_size=20), st.none(), st.floats()))
def test_json_that_is_not_an_embedding_is_refused(value) -> None:
    with pytest.raises(ValueError):
        faces.embedding_from_json(value)


def test_serializing_a_wrong_embedding_is_refused() -> None:
    for bad in (np.zeros(127, np.float32), np.zeros((2, 128)), np.full(128, np.nan)):
        with pytest.raises(ValueError):
            faces.embedding_to_bytes(bad)
        with pytest.raises(ValueError):
            faces.embedding_to_json(bad)


def test_timings_for_the_record(engine: FaceEngine, photos, found) -> None:
    """Prints how long each call takes here (run with -s to see it); asserts nothing of it."""
    frame, _ = pasted_frame(photos["obama.jpg"], found["obama.jpg"][0].box)
    empty = np.full((FRAME_H, FRAME_W, 3), 90, np.uint8)
    timings = {"load the engine": LOAD_SECONDS[0]}
    for label, image, detect_width in (("1280x720, no face", empty, None),
                                       ("1280x720, no face, detect at 640", empty, 640),
                                       ("1280x720, one face", frame, None),
                                       ("1280x720, one face, detect at 640", frame, 640)):
        started = time.perf_counter()
        engine.find(image, detect_width=detect_width)
        timings[label] = time.perf_counter() - started
    vector = embedding(found, "obama.jpg")
    gallery = {person: [vector] * 5 for person in range(100)}
    started = time.perf_counter()
    faces.match(vector, gallery)
    timings["match against 100 people x 5"] = time.perf_counter() - started
    for label, seconds in timings.items():
        print(f"faces timing: {label}: {seconds * 1000:.1f} ms")
