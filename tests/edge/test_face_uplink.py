"""Face sightings to a real hub on loopback and its gallery back: a report is stored (the final
one supersedes the first), sightings spooled while the hub is away are delivered when it is
back, the gallery is fetched once and then answered 304 until it changes, an older hub pauses
faces; and a whole edge with --faces reports the face in the scene it plays."""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import subprocess
import sys
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
from sqlalchemy.orm import Session

from edge.face_tracker import FaceResult, Gallery, SightingTracker
from edge.face_uplink import BadGallery, FaceReporter, gallery_from_json
from edge.reports import EventQueue
from edge.uplink import HubAddress
from nvrlib.catalog import db as catalog_db
from nvrlib.catalog.models import Camera, FaceSample, FaceSighting, Person
from nvrlib.faces import embedding_to_bytes, embedding_to_json
from nvrlib.ffmpeg_bin import ffmpeg_exe
from tests.support.face_photos import missing_reason, photos_dir
from tests.support.procs import ROOT, Hub, LoggedProcess, migrated_catalog, running, wait_for
from tests.support.requirements import require

TOKEN = "face-token"
CAMERA = "porch"
T0 = time.time() - 120  # recent: the hub refuses times far from now


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


@settings(max_examples=100, deadline=None)
@given(faces=st.dictionaries(st.sampled_from(["enabled", "etag", "threshold", "people"]),
                             json_values))
def test_any_gallery_answer_is_read_or_refused_with_bad_gallery(faces: dict) -> None:
    try:
        gallery_from_json({"faces": faces})
    except BadGallery:
        pass


# -- against a real hub on loopback -------------------------------------------------------------

@pytest.fixture
def hub(hub_factory) -> Hub:  # type: ignore[no-untyped-def]
    """A real hub (not started) whose catalog has the pushing camera ``porch`` and no one else."""
    made = hub_factory(config=f'ingest_token = "{TOKEN}"\n')
    shutil.copyfile(migrated_catalog(), made.db_path)
    with catalog(made) as session:
        session.add(Camera(name=CAMERA, kind="push"))
    return made


@contextlib.contextmanager
def catalog(hub: Hub) -> Iterator[Session]:
    """A session on the hub's catalog, committed at the end."""
    engine = catalog_db.make_engine(hub.db_url)
    try:
        with Session(engine, expire_on_commit=False) as session, session.begin():
            yield session
    finally:
        engine.dispose()


def sightings(hub: Hub) -> list[FaceSighting]:
    with catalog(hub) as session:
        return list(session.scalars(select(FaceSighting).order_by(FaceSighting.id)))


class Edge:
    """A FaceReporter and a SightingTracker as a stream runs them, the gallery recorded."""

    def __init__(self, hub: Hub, spool: Path, token: str = TOKEN) -> None:
        self.galleries: list[Gallery] = []
        self.supported: list[bool] = []
        self.queue = EventQueue(spool, key_field="sighting_key", kind="faces")
        self.reporter = FaceReporter(
            CAMERA, HubAddress("127.0.0.1", hub.port, token, "test"), self.queue,
            threading.Event(), on_gallery=self.galleries.append,
            on_supported=self.supported.append, poll_seconds=30.0)
        self.tracker = SightingTracker(self.reporter.report, debounce=5.0)

    def __enter__(self) -> Edge:
        self.reporter.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.reporter.finish()
        self.reporter.join(10)


def test_a_sighting_is_stored_and_its_final_report_supersedes_the_first(
        hub: Hub, tmp_path: Path) -> None:
    hub.start()
    with Edge(hub, tmp_path / "spool") as edge:
        wait_for(lambda: edge.galleries, 15, "the gallery")
        assert edge.supported == [True] and edge.galleries[0].people == {}
        edge.tracker.update(face(T0, size=100))
        wait_for(lambda: sightings(hub), 15, "the first report stored")
        edge.tracker.update(face(T0 + 2, size=200))
        edge.tracker.flush()
        wait_for(lambda: len(edge.queue) == 0 and sightings(hub)[0].end_time is not None, 15,
                 "the final report stored")
    [row] = sightings(hub)
    assert row.sighting_key == edge.tracker.run_id + "-f1" and row.person_id is None
    assert row.face_size == 200 and (row.end_time - row.start_time).total_seconds() == 2
    assert (hub.storage / row.crop_path).read_bytes()[:2] == b"\xff\xd8"
    assert edge.reporter.sent == 2


def test_sightings_spooled_while_the_hub_is_away_are_delivered_when_it_is_back(
        hub: Hub, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    with Edge(hub, spool) as edge:  # the hub is not started yet: nothing listens on its port
        edge.tracker.update(face(T0))
        edge.tracker.update(face(T0 + 1, axis=5))  # someone else
        edge.tracker.flush()
        assert len(list(spool.glob("*.json"))) == 2  # each final report replaced its first
    assert len(EventQueue(spool, key_field="sighting_key", kind="faces")) == 2  # a restart
    hub.start()
    with Edge(hub, spool) as edge:
        wait_for(lambda: len(edge.queue) == 0, 20, "the spooled sightings delivered")
    rows = sightings(hub)
    assert len(rows) == 2 and all(row.end_time is not None for row in rows)
    assert not list(spool.glob("*.json"))


def test_a_refusing_hub_is_logged_once_not_once_per_try(
        hub: Hub, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    hub.start()
    with caplog.at_level(logging.DEBUG, logger="edge"), \
            Edge(hub, tmp_path / "spool", token="wrong") as edge:
        edge.tracker.update(face(T0))
        wait_for(lambda: caplog.text.count("still unreachable") >= 2, 20, "three tries")
        assert len(edge.queue) == 1, "kept for when the token is right"
    tries = [r.getMessage() for r in caplog.records if "face sightings" in r.getMessage()]
    assert sum("unreachable, retrying" in m and "401" in m for m in tries) == 1, tries
    assert not any("reachable again" in m for m in tries), tries


def test_the_gallery_is_fetched_once_then_304_until_someone_is_enrolled(
        hub: Hub, tmp_path: Path) -> None:
    hub.start()
    with Edge(hub, tmp_path / "spool") as edge:
        wait_for(lambda: edge.galleries, 15, "the gallery")
        first = edge.galleries[0].etag
        edge.reporter.poll_soon()
        wait_for(lambda: edge.reporter.polls >= 2, 15, "a second poll")
        assert len(edge.galleries) == 1  # 304: nothing changed, nothing applied
        with catalog(hub) as session:
            alice = Person(name="Alice", name_key="alice")
            session.add(alice)
            session.flush()
            session.add(FaceSample(person_id=alice.id, embedding=embedding_to_bytes(unit(0))))
        # a stored sighting's answer names the new gallery (once the hub's cache, checked at
        # most once a second, saw it): the edge fetches it at once, not at its 30 s poll
        strangers = iter(range(7, 100))

        def sighting_brings_the_new_gallery() -> bool:
            edge.tracker.update(face(T0, axis=next(strangers)))
            return len(edge.galleries) == 2

        wait_for(sighting_brings_the_new_gallery, 15, "the new gallery", interval=0.5)
        gallery = edge.galleries[1]
        assert gallery.etag != first and gallery.names == {alice.id: "Alice"}
        edge.tracker.set_gallery(gallery)
        assert edge.tracker.update(face(T0 + 1, axis=0)) == alice.id
        edge.tracker.flush()
        wait_for(lambda: len(edge.queue) == 0, 15, "the reports sent")
    # by start, not by row id: a stranger's final report can replace its still-queued first
    # report, behind Alice's, and so be stored after hers (seen on a loaded machine)
    named = [row.person_id for row in sorted(sightings(hub), key=lambda row: row.start_time)]
    assert named[-1] == alice.id and set(named[:-1]) == {None}


def test_an_older_hub_pauses_faces_and_is_asked_again_later(ingest_server, tmp_path: Path) -> None:
    older = ingest_server()  # tests/edge/fakehub.py: 404 "not found" on the report routes
    supported: list[bool] = []
    queue = EventQueue(tmp_path / "spool", key_field="sighting_key", kind="faces")
    reporter = FaceReporter(CAMERA, HubAddress("127.0.0.1", older.port, None, "test"), queue,
                            threading.Event(), on_gallery=lambda gallery: None,
                            on_supported=supported.append, unsupported_poll_seconds=0.2)
    reporter.start()
    try:
        wait_for(lambda: reporter.polls >= 3, 15, "three polls of an older hub")
        assert supported == [False]  # told once, then asked again quietly
        SightingTracker(reporter.report).update(face(T0))
        wait_for(lambda: len(queue) == 0, 15, "the sighting dropped: the hub cannot take it")
        assert reporter.sent == 0
    finally:
        reporter.finish()
        reporter.join(10)


# -- the whole edge: python -m edge --faces playing a scene, to the real hub ---------------------

@pytest.fixture(scope="module")
def face_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 s at 15 fps, 1280x720: 2 s of an empty grey scene, then 4 s with obama.jpg in it."""
    require(missing_reason(), remedy="fetch them with scripts/fetch-face-photos.sh")
    folder = tmp_path_factory.mktemp("scene")
    empty = np.full((720, 1280, 3), 90, np.uint8)
    with_face = empty.copy()
    with_face[100:700, 700:1180] = cv2.resize(cv2.imread(str(photos_dir() / "obama.jpg")),
                                              (480, 600), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(folder / "empty.png"), empty)
    cv2.imwrite(str(folder / "face.png"), with_face)
    scene = folder / "scene.mp4"
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-loop", "1", "-t", "2",
                    "-i", str(folder / "empty.png"), "-loop", "1", "-t", "4",
                    "-i", str(folder / "face.png"), "-filter_complex",
                    "[0][1]concat=n=2:v=1:a=0,format=yuv420p", "-r", "15", "-c:v", "libx264",
                    "-preset", "ultrafast", "-g", "15", str(scene)], check=True, timeout=120)
    return scene


def test_an_edge_with_faces_reports_the_face_in_its_scene_with_its_crop(
        hub: Hub, face_scene: Path, tmp_path: Path) -> None:
    hub.start()
    edge = LoggedProcess([sys.executable, "-m", "edge", "--hub", "127.0.0.1", "--port",
                          str(hub.port), "--token", TOKEN, "--camera", str(face_scene),
                          "--name", CAMERA, "--spool-dir", str(tmp_path / "spool"), "--faces",
                          "--faces-overlay", "--faces-detect-width", "640"], cwd=ROOT)
    with running(edge):
        wait_for(lambda: sightings(hub), 60, "a sighting from the edge")
        assert edge.terminate(timeout=30) == 0, edge.output[-3000:]
    [row] = sightings(hub)  # the scene loops: one sighting per person per 30 s
    assert row.end_time is not None and row.person_id is None and row.face_size >= 100
    assert (hub.storage / row.crop_path).read_bytes()[:2] == b"\xff\xd8"
    checked = re.search(r"faces: (\d+) frame\(s\) checked, (\d+) skipped", edge.output)
    assert checked and int(checked.group(1)) >= 1, edge.output[-3000:]
    # (frames dropped: the benchmark's and the end-to-end test's measure; a loaded 2-core
    # machine drops one or two here with or without faces)
