"""Face sightings to a real hub on loopback and its gallery back: a report is stored (the final
one supersedes the first), sightings spooled while the hub is away are delivered when it is
back, and the gallery is fetched once and then answered 304 until it changes."""

from __future__ import annotations

import base64
import datetime as dt
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from edge.face_tracker import FaceResult, Gallery, Sighting, SightingTracker
from edge.face_uplink import BadGallery, FaceReporter, gallery_from_json
from edge.reports import EventQueue
from edge.uplink import HubAddress
from nvrlib.catalog import db as catalog_db
from nvrlib.catalog.models import FaceSample, FaceSighting, Person
from nvrlib.faces import embedding_to_bytes, embedding_to_json
from recorder.store.catalog import Catalog
from tests.support.procs import Hub, migrated_catalog, wait_for

TOKEN = "face-token"
CAMERA = "porch"


def unit(axis: int) -> np.ndarray:
    vector = np.zeros(128, np.float32)
    vector[axis] = 1.0
    return vector


def crop() -> bytes:
    ok, data = cv2.imencode(".jpg", np.full((160, 160, 3), 120, np.uint8))
    assert ok
    return data.tobytes()


def face(wall: float, axis: int = 0, size: int = 120) -> FaceResult:
    return FaceResult(wall, 1280, 720, (600, 200, size, size), size, 1.5, unit(axis), crop())


# -- the gallery answer, parsed (no hub) ----------------------------------------------------------

def answer(**faces: object) -> dict:
    body = {"enabled": True, "etag": "9f2c61d0a4e3b7c1", "threshold": 0.6,
            "people": [{"id": 3, "name": "Alice", "embeddings": [embedding_to_json(unit(0))]}]}
    body.update(faces)
    return {"camera": CAMERA, "faces": body}


def test_a_gallery_answer_becomes_people_names_and_a_threshold() -> None:
    gallery = gallery_from_json(answer())
    assert (gallery.etag, gallery.threshold, gallery.enabled) == ("9f2c61d0a4e3b7c1", 0.6, True)
    assert gallery.names == {3: "Alice"} and np.array_equal(gallery.people[3][0], unit(0))


@pytest.mark.parametrize("faces, words", [
    ({"enabled": "yes"}, "faces.enabled"),
    ({"etag": 5}, "faces.etag"),
    ({"threshold": 0}, "faces.threshold"),
    ({"threshold": True}, "faces.threshold"),
    ({"people": {}}, "faces.people must be a list"),
    ({"people": [5]}, "each of faces.people"),
    ({"people": [{"id": "3", "name": "A", "embeddings": []}]}, "id must be an integer"),
    ({"people": [{"id": 3, "name": "", "embeddings": []}]}, "person 3: name"),
    ({"people": [{"id": 3, "name": "A", "embeddings": [[1.0]]}]}, "person 3: an embedding"),
])
def test_a_bad_gallery_answer_is_refused_naming_the_field(faces: dict, words: str) -> None:
    with pytest.raises(BadGallery, match=words):
        gallery_from_json(answer(**faces))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(faces=st.dictionaries(st.sampled_from(["enabled", "etag", "threshold", "people"]),
                             json_values))
def test_any_gallery_answer_is_read_or_refused_with_bad_gallery(faces: dict) -> None:
    try:
        gallery_from_json({"faces": faces})
    except BadGallery:
        pass
