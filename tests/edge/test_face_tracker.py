"""Faces debounced into sightings: one per person per window, reported at once and again at
its end with the best face; unknown faces grouped by likeness. Synthetic embeddings, no dlib."""

from __future__ import annotations

import base64
import re

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.face_tracker import FaceResult, Gallery, Sighting, SightingTracker

EVENT_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # recorder/ingest/events.py
T0 = 1_780_000_000.0


def unit(axis: int, offset: float = 0.0) -> np.ndarray:
    """An embedding on one axis (people 1.0 apart), nudged by ``offset`` along the next."""
    vector = np.zeros(128, np.float32)
    vector[axis] = 1.0
    vector[(axis + 1) % 128] = offset
    return vector


def face(wall: float, who: int, *, size: int = 100, score: float = 1.0, offset: float = 0.0,
         crop: bytes = b"\xff\xd8\xff") -> FaceResult:
    return FaceResult(T0 + wall, 1280, 720, (640, 360, size, size), size, score,
                      unit(who, offset), crop)


ALICE, BOB = 3, 4
GALLERY = Gallery("etag1", 0.6, {ALICE: [unit(0)], BOB: [unit(1)]}, {ALICE: "Alice", BOB: "Bob"})


def tracker(debounce: float = 30.0, **kwargs) -> tuple[SightingTracker, list[Sighting]]:
    reports: list[Sighting] = []
    made = SightingTracker(reports.append, debounce=debounce, run_id="3f9c0a1b2c3d4e5f", **kwargs)
    return made, reports


def test_a_persons_first_face_is_reported_at_once_and_again_with_the_best_at_the_end() -> None:
    faces, reports = tracker()
    faces.set_gallery(GALLERY)
    assert faces.update(face(0, 0, offset=0.5, crop=b"first")) == ALICE
    assert [(r.key, r.person, r.end) for r in reports] == [("3f9c0a1b2c3d4e5f-f1", ALICE, None)]
    faces.update(face(4, 0, offset=0.1, crop=b"best"))
    faces.update(face(9, 0, offset=0.3, crop=b"later"))
    faces.tick(T0 + 29.9)
    assert len(reports) == 1  # nothing sent within the window
    faces.tick(T0 + 30)
    final = reports[1]
    assert final.key == reports[0].key and final.end == T0 + 9 and final.start == T0
    assert final.face.crop == b"best" and abs(final.distance - 0.1) < 1e-6
    body = final.to_json()
    assert body["end"] == round(T0 + 9, 3) and body["person"] == ALICE
    assert base64.b64decode(body["crop"]) == b"best" and len(body["embedding"]) == 128
    assert body["box"] == [0.5, 0.5, round(100 / 1280, 4), round(100 / 720, 4)]
    assert body["gallery"] == "etag1"


def test_the_next_face_after_the_window_opens_a_new_sighting() -> None:
    faces, reports = tracker(debounce=10)
    faces.set_gallery(GALLERY)
    faces.update(face(0, 0))
    faces.update(face(12, 0))
    assert [(r.key[-2:], r.end) for r in reports] == [("f1", None), ("f1", T0), ("f2", None)]


def test_an_unknown_face_a_new_gallery_names_stays_one_sighting() -> None:
    """The edge's first gallery (or an enrollment) arrives while the face is in view: the open
    unknown sighting becomes the person's, not a second sighting of the same face."""
    faces, reports = tracker()
    assert faces.update(face(0, 0, offset=0.2, crop=b"unknown")) is None
    faces.update(face(0.5, 1))  # someone else, unknown too: left alone
    faces.set_gallery(GALLERY)
    assert faces.update(face(1, 0, offset=0.1, crop=b"named")) == ALICE
    faces.update(face(2, 0, offset=0.3))
    assert faces.open_count == 2
    faces.flush()
    first, other, *finals = reports
    assert (first.person, other.person) == (None, None)
    [alice] = [r for r in finals if r.key == first.key]
    assert alice.person == ALICE and alice.start == T0 and alice.end == T0 + 2
    assert alice.face.crop == b"named" and abs(alice.distance - 0.1) < 1e-6
    assert alice.gallery == "etag1"
    assert [r.person for r in finals if r.key == other.key] == [None]  # the hub names it


def test_two_people_at_once_are_two_sightings() -> None:
    faces, reports = tracker()
    faces.set_gallery(GALLERY)
    faces.update(face(0, 0))
    faces.update(face(0.5, 1))
    faces.flush()
    assert sorted((r.person, r.end is None) for r in reports) == [
        (ALICE, False), (ALICE, True), (BOB, False), (BOB, True)]


def test_unknown_faces_are_tracked_by_likeness_and_keep_their_largest_face() -> None:
    faces, reports = tracker()  # no gallery: every face is unknown
    faces.update(face(0, 10, size=90, crop=b"small"))
    faces.update(face(1, 10, size=160, offset=0.2, crop=b"large"))  # the same stranger
    faces.update(face(2, 10, size=120, score=9.0, offset=0.1))
    faces.update(face(2, 20))  # someone else
    assert [r.end for r in reports] == [None, None]
    faces.flush()
    first = next(r for r in reports if r.end is not None and r.key.endswith("f1"))
    assert first.person is None and first.distance is None and first.face.crop == b"large"
    assert first.to_json()["distance"] is None and first.to_json()["gallery"] == ""


def test_equal_sizes_keep_the_higher_score() -> None:
    faces, reports = tracker()
    faces.update(face(0, 10, score=1.0, crop=b"a"))
    faces.update(face(1, 10, score=2.0, crop=b"b"))
    faces.flush()
    assert reports[-1].face.crop == b"b"


def test_too_many_open_tracks_close_the_oldest_early() -> None:
    faces, reports = tracker(max_tracks=3)
    for n in range(4):
        faces.update(face(n, 10 + n))
    assert faces.open_count == 3
    assert [(r.key[-2:], r.end) for r in reports if r.end is not None] == [("f1", T0)]


def test_a_new_gallery_is_used_from_the_next_face() -> None:
    faces, reports = tracker()
    assert faces.update(face(0, 1)) is None
    faces.set_gallery(GALLERY)
    assert faces.update(face(1, 0)) == ALICE  # not Bob's unknown track: a sighting of its own
    assert [r.person for r in reports] == [None, ALICE]


# the event order: faces of a few people at increasing times, ticks in between, then a flush
steps = st.lists(st.tuples(st.floats(0, 20), st.sampled_from([0, 1, 10, 11, None])),
                 max_size=40)


@settings(max_examples=150, deadline=None)
@given(steps=steps, debounce=st.sampled_from([5.0, 10.0, 30.0]))
def test_any_order_of_faces_gives_two_reports_a_sighting_and_windows_never_overlap(
        steps: list[tuple[float, int | None]], debounce: float) -> None:
    faces, reports = tracker(debounce=debounce)
    faces.set_gallery(GALLERY)
    wall = 0.0
    for gap, who in steps:
        wall += gap
        if who is None:
            faces.tick(T0 + wall)
        else:
            faces.update(face(wall, who))
    faces.flush()
    by_key: dict[str, list[Sighting]] = {}
    for report in reports:
        by_key.setdefault(report.key, []).append(report)
    for key, pair in by_key.items():
        assert EVENT_KEY_RE.fullmatch(key)
        assert [r.end is None for r in pair] == [True, False]  # opened, then closed: once each
        first, final = pair
        assert first.start == final.start <= final.end < final.start + debounce
    # one sighting per person per window: a person's sightings never overlap
    for person in (ALICE, BOB):
        spans = sorted((r.start, r.end) for r in reports if r.person == person and r.end)
        assert all(a_end < b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:]))
