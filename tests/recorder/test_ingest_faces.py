"""Face sightings on the ingest port: the parser (no input gives a 500), every answer of a real
hub over a real socket, the hub naming a face the edge did not know, and the gallery's ETag."""

from __future__ import annotations

import base64
import concurrent.futures
import datetime as dt
import http.client
import json
import socket
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
import pytest
import sqlalchemy
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from nvrlib.catalog import db
from nvrlib.catalog.models import Camera, FaceSample, FaceSighting, Person, Setting, utcnow
from nvrlib.faces import FaceEngine, crop_jpeg, embedding_to_bytes, embedding_to_json
from nvrlib.faces_gallery import MAX_GALLERY_EMBEDDINGS, MAX_SAMPLES_PER_PERSON, gallery_state
from recorder.errors import IngestRejected
from recorder.ingest.faces import (
    MAX_CROP_BYTES, MAX_FACE_BODY_BYTES, etag_matches, parse_sighting,
)
from tests.support.face_photos import photos_dir
from tests.support.procs import Hub, wait_for

NOW = 1_780_000_000.0
TOKEN = "faces-token"
JPEG = b"\xff\xd8\xff\xe0" + bytes(32)
EMBEDDING = [0.01 * (i % 7) for i in range(128)]


def body(**fields: object) -> bytes:
    return json.dumps({"sighting_key": "ab12-f1", "start": NOW - 10, "end": None, "person": None,
                       "distance": None, "gallery": "", "box": [0.4, 0.2, 0.1, 0.2], "size": 131,
                       "score": 1.27, "embedding": EMBEDDING,
                       "crop": base64.b64encode(JPEG).decode(), **fields}).encode()


# -- the parser ----------------------------------------------------------------------------------

def test_a_good_report_is_parsed() -> None:
    report = parse_sighting("porch", body(end=NOW - 2, person=3, distance=0.41,
                                          gallery="9f2c61d0a4e3b7c1"), now=NOW)
    assert (report.camera, report.sighting_key, report.person, report.gallery) == (
        "porch", "ab12-f1", 3, "9f2c61d0a4e3b7c1")
    assert report.end is not None and (report.end - report.start).total_seconds() == 8
    assert (report.size, report.score, report.distance, report.crop) == (131, 1.27, 0.41, JPEG)
    assert report.embedding.dtype == np.float32 and report.embedding.shape == (128,)


@pytest.mark.parametrize("raw, status, words", [
    (b"{garbage", 400, "not valid JSON"),
    (body(sighting_key="../x"), 400, "sighting_key"),
    (body(end=NOW + 700), 400, "within 600 s"),
    (body(end=NOW - 20), 400, "end must be at or after start"),
    (body(person="alice"), 400, "person"),
    (body(person=0), 400, "person"),
    (body(distance=-1), 400, "distance"),
    (body(gallery="<script>"), 400, "gallery"),
    (body(box=[0.9, 0.1, 0.5, 0.2]), 400, "box must lie within"),
    (body(box=None), 400, "box must be"),
    (body(size=0), 400, "size"),
    (body(size=12.5), 400, "size must be a whole number"),
    (body(score=101), 400, "score"),
    (body(embedding=EMBEDDING[:127]), 400, "embedding: an embedding is a JSON list of 128"),
    (body(embedding=EMBEDDING[:127] + ["x"]), 400, "embedding"),
    (body(embedding=EMBEDDING[:127] + [1e300]), 400, "embedding"),
    (body(crop=None), 400, "crop is required"),
    (body(crop="%%%"), 400, "crop is not valid base64"),
    (body(crop=base64.b64encode(b"GIF89a").decode()), 400, "crop must be a JPEG"),
    (body(crop=base64.b64encode(JPEG + bytes(MAX_CROP_BYTES)).decode()), 413, "crop is larger"),
])
def test_bad_reports_get_a_4xx_naming_the_field(raw: bytes, status: int, words: str) -> None:
    with pytest.raises(IngestRejected) as caught:
        parse_sighting("porch", raw, now=NOW)
    assert caught.value.status == status and words in caught.value.reason, caught.value.reason


FIELDS = ["sighting_key", "start", "end", "person", "distance", "gallery", "box", "size",
          "score", "embedding", "crop", "x"]


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.sampled_from(FIELDS), inner, max_size=8), max_leaves=14),
       st.dictionaries(st.sampled_from(FIELDS[:-1]), st.none() | st.integers() | st.floats()
                       | st.text(max_size=4) | st.lists(st.floats(), max_size=3), max_size=3))
def test_any_json_is_parsed_or_refused_with_a_4xx(data: object, changes: dict[str, Any]) -> None:
    """Garbage anywhere, or a good report with a few fields made wrong: never anything but a 4xx."""
    for raw in (json.dumps(data, allow_nan=True).encode(), body(**changes)):
        try:
            parse_sighting("porch", raw, now=NOW)
        except IngestRejected as exc:
            assert 400 <= exc.status < 500


@pytest.mark.parametrize("header, matches", [
    ('"abc"', True), ('W/"abc"', True), ('"x", "abc"', True), ("*", True), ('"abd"', False),
    ("abc", False), ("", False), (None, False), ('"', False),
])
def test_if_none_match_is_read_as_rfc_9110_says(header: str | None, matches: bool) -> None:
    assert etag_matches(header, "abc") is matches


# -- a real hub ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def faces() -> dict[str, tuple[np.ndarray, bytes]]:
    """Each photo's face: its embedding and a 160-px crop, as an edge's worker makes them."""
    engine, found = FaceEngine(), {}
    for name in ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg"):
        image = cv2.imread(str(photos_dir() / name))
        [face] = engine.find(image, detect_width=400)  # these photos are one large face each
        found[name] = (face.embedding, crop_jpeg(image, face.box, size=160))
    return found


class Setup:
    """A running hub and its catalog, with cameras in every standing and Obama enrolled."""

    def __init__(self, hub: Hub, catalog: sqlalchemy.Engine, obama: int) -> None:
        self.hub, self.catalog, self.obama = hub, catalog, obama

    def request(self, method: str, route: str, payload: bytes | None = None,
                token: str | None = TOKEN, headers: dict[str, str] | None = None,
                camera: str = "yard") -> tuple[int, dict[str, str], bytes]:
        """One request on its own connection; (status, headers, body)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.hub.port, timeout=10)
        sent = {"Content-Type": "application/json", **(headers or {})}
        if token:
            sent["Authorization"] = f"Bearer {token}"
        try:
            conn.request(method, f"/ingest/v1/{camera}/{route}", body=payload, headers=sent)
            answer = conn.getresponse()
            return answer.status, dict(answer.getheaders()), answer.read()
        finally:
            conn.close()

    def post(self, payload: bytes, **kwargs: Any) -> tuple[int, Any]:
        status, _headers, raw = self.request("POST", "faces", payload, **kwargs)
        return status, json.loads(raw) if status == 200 else raw.decode()

    def gallery(self, etag: str | None = None, camera: str = "yard",
                ) -> tuple[int, dict[str, str], bytes]:
        headers = {"If-None-Match": f'"{etag}"'} if etag else {}
        return self.request("GET", "faces-gallery", headers=headers, camera=camera)

    def row(self, key: str) -> FaceSighting:
        with Session(self.catalog) as session:
            found = session.scalar(select(FaceSighting).where(FaceSighting.sighting_key == key))
            assert found is not None
            return found


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory,
          request: pytest.FixtureRequest) -> Iterator[Setup]:
    workdir = tmp_path_factory.mktemp("faces-hub")
    hub = Hub(workdir, config=f'ingest_token = "{TOKEN}"\nhead_timeout = 1.0\n'
                              '[[cameras]]\nname = "gate"\nurl = "rtsp://127.0.0.1:9/s"\n')
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # the engine works while it starts
        started = pool.submit(hub.start)
        try:
            faces = request.getfixturevalue("faces")
        finally:
            started.result()
    catalog = db.make_engine(hub.db_url)
    try:
        with Session(catalog) as session:
            session.add_all([Camera(name="yard"), Camera(name="porch"),
                             Camera(name="waiting", approval="pending"),
                             Camera(name="off", enabled=False), Camera(name="far", hub_id="b")])
            obama = Person(name="Obama", name_key="obama")
            session.add(obama)
            session.flush()
            session.add(FaceSample(person_id=obama.id,
                                   embedding=embedding_to_bytes(faces["obama.jpg"][0])))
            session.commit()
            yield Setup(hub, catalog, obama.id)
    finally:
        catalog.dispose()
        hub.stop()
    assert "Traceback" not in hub.output, hub.output


def sighting(face: tuple[np.ndarray, bytes], key: str, start: float, end: float | None = None,
             person: int | None = None, **fields: object) -> bytes:
    embedding, crop = face
    return json.dumps({"sighting_key": key, "start": start, "end": end, "person": person,
                       "distance": None, "gallery": "", "box": [0.4, 0.2, 0.1, 0.2],
                       "size": 150, "score": 1.1, "embedding": embedding_to_json(embedding),
                       "crop": base64.b64encode(crop).decode(), **fields}).encode()


def test_a_sighting_the_edge_did_not_know_is_named_by_the_hub_and_the_final_report_wins(
        setup: Setup, faces: dict[str, tuple[np.ndarray, bytes]]) -> None:
    start = utcnow().timestamp() - 20
    for _ in range(2):  # the first report, and its resend from the edge's spool
        status, answer = setup.post(sighting(faces["obama2.jpg"], "run1-f1", start))
        assert status == 200, answer
        assert answer["person"] == {"id": setup.obama, "name": "Obama"}
        assert answer["camera"] == "yard" and answer["sighting_key"] == "run1-f1"
        assert len(answer["gallery"]) == 16
    row = setup.row("run1-f1")
    assert row.person_id == setup.obama and row.end_time is None and row.distance < 0.6
    crop = setup.hub.storage / row.crop_path
    assert crop.read_bytes() == faces["obama2.jpg"][1]
    with Session(setup.catalog) as session:
        assert session.scalar(select(Camera.faces_seen_at).where(Camera.name == "yard"))
        assert len(session.scalars(select(FaceSighting.id).where(
            FaceSighting.sighting_key == "run1-f1")).all()) == 1

    status, answer = setup.post(sighting(faces["obama3.jpg"], "run1-f1", start, start + 12,
                                         size=210))
    assert status == 200 and answer["person"]["name"] == "Obama"
    row = setup.row("run1-f1")
    assert row.end_time == dt.datetime.fromtimestamp(start + 12, dt.timezone.utc)
    assert row.face_size == 210 and crop.read_bytes() == faces["obama3.jpg"][1]

    status, answer = setup.post(sighting(faces["biden.jpg"], "run1-f2", start, start + 3,
                                         person=setup.obama))  # an edge's wrong hint
    assert status == 200 and answer["person"] is None
    assert setup.row("run1-f2").person_id is None and setup.row("run1-f2").distance > 0.6


def test_every_refusal_gets_its_status_and_a_line_naming_the_problem(
        setup: Setup, faces: dict[str, tuple[np.ndarray, bytes]]) -> None:
    now = utcnow().timestamp()
    good = sighting(faces["biden.jpg"], "ref-f1", now - 5)
    assert setup.post(sighting(faces["biden.jpg"], "taken-f1", now - 5), camera="porch")[0] == 200
    cases = [
        (setup.post(b"{not json"), 400, "not valid JSON"),
        (setup.post(good, camera="..%2Fetc"), 400, "bad camera name"),
        (setup.post(sighting(faces["biden.jpg"], "ref-f1", now, embedding=[1] * 3)), 400,
         "embedding"),
        (setup.post(good, token="wrong"), 401, "bearer token"),
        (setup.post(good, token=None), 401, "bearer token"),
        (setup.post(good, camera="waiting"), 403, "pending"),
        (setup.post(good, camera="nobody"), 404, "unknown camera"),
        (setup.request("GET", "faces")[:3:2], 405, "method GET is not allowed"),
        (setup.request("POST", "faces-gallery")[:3:2], 405, "method POST is not allowed"),
        (setup.post(good, camera="gate"), 409, "pulled"),
        (setup.post(good, camera="far"), 409, "recorded by hub b"),
        (setup.post(sighting(faces["biden.jpg"], "taken-f1", now - 5)), 409,
         "belongs to another camera"),
        (setup.post(b"x" * (MAX_FACE_BODY_BYTES + 1)), 413, "larger than 98304"),
        (setup.post(good, headers={"Content-Type": "text/plain"}), 415, "application/json"),
        (setup.post(good, camera="off"), 423, "disabled"),
    ]
    for (status, text), expected, words in cases:
        text = text.decode() if isinstance(text, bytes) else str(text)
        assert (status, words in text) == (expected, True), (status, text, words)
    assert _slow_body_status(setup) == 408
    assert setup.post(good)[0] == 200  # after all that, the hub takes the report


def _slow_body_status(setup: Setup) -> int:
    """A body that never arrives: 408 within the hub's head_timeout (1 s here)."""
    with socket.create_connection(("127.0.0.1", setup.hub.port), timeout=10) as sock:
        sock.sendall(f"POST /ingest/v1/yard/faces HTTP/1.1\r\nHost: hub\r\n"
                     f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: 500\r\n\r\n{{\"sighting_key\"".encode())
        answer = sock.recv(4096)
    return int(answer.split(b" ", 2)[1])


def _gallery_json(setup: Setup, camera: str = "yard") -> tuple[str, dict[str, Any]]:
    status, headers, raw = setup.gallery(camera=camera)
    assert status == 200
    answer = json.loads(raw)
    assert headers["ETag"] == f'"{answer["faces"]["etag"]}"'
    return answer["faces"]["etag"], answer


def _changed(setup: Setup, old: str, camera: str = "yard") -> tuple[str, dict[str, Any]]:
    """Wait until the gallery's ETag differs from ``old`` (the hub reads it once a second)."""
    return wait_for(lambda: (lambda got: got if got[0] != old else None)(
        _gallery_json(setup, camera)), 10, "a new gallery ETag")


def _fill_gallery(session: Session) -> None:
    """Enroll people until the gallery is at its largest but one (~5.4 MB of JSON)."""
    rng = np.random.default_rng(7)
    for n in range(MAX_GALLERY_EMBEDDINGS // MAX_SAMPLES_PER_PERSON):
        person = Person(name=f"Many {n}", name_key=f"many {n}")
        session.add(person)
        session.flush()
        session.add_all(FaceSample(person_id=person.id, embedding=embedding_to_bytes(
            rng.normal(size=128).astype(np.float32))) for _ in range(
                MAX_SAMPLES_PER_PERSON - (n == 0)))


def test_the_gallery_is_answered_304_until_it_or_the_cameras_switch_changes(
        setup: Setup, faces: dict[str, tuple[np.ndarray, bytes]]) -> None:
    etag, answer = _gallery_json(setup)
    obama = next(p for p in answer["faces"]["people"] if p["id"] == setup.obama)
    assert obama["name"] == "Obama" and len(obama["embeddings"]) == 1
    assert np.allclose(obama["embeddings"][0], faces["obama.jpg"][0], atol=0)
    assert answer["camera"] == "yard" and answer["faces"]["enabled"] is True
    assert 0.4 <= answer["faces"]["threshold"] <= 0.7

    status, headers, raw = setup.gallery(etag)
    assert (status, raw, headers["ETag"]) == (304, b"", f'"{etag}"')
    assert setup.request("GET", "faces-gallery", headers={"If-None-Match": f'W/"{etag}"'})[0] == 304

    with Session(setup.catalog) as session:  # the web app enrolls Dave, and fills the gallery
        dave = Person(name="Dave", name_key="dave")
        session.add(dave)
        session.flush()
        session.add(FaceSample(person_id=dave.id, embedding=bytes(512)))
        _fill_gallery(session)
        session.commit()
        dave_id = dave.id
    etag, answer = _changed(setup, etag)
    assert next(p for p in answer["faces"]["people"] if p["id"] == dave_id) == {
        "id": dave_id, "name": "Dave", "embeddings": [[0.0] * 128]}
    many = [p for p in answer["faces"]["people"] if p["name"].startswith("Many ")]
    assert sum(len(p["embeddings"]) for p in many) == MAX_GALLERY_EMBEDDINGS - 1
    status, _headers, raw = setup.gallery()
    assert status == 200 and 4_000_000 < len(raw) < 8 * 1024 * 1024  # the edge's read cap
    assert setup.gallery(etag)[0] == 304

    porch, _ = _gallery_json(setup, "porch")
    assert porch == etag  # the same gallery for every camera whose faces are on
    with setup.catalog.begin() as conn:  # an admin turns faces off at the porch
        conn.execute(update(Camera).where(Camera.name == "porch").values(faces_enabled=False))
    porch, answer = _changed(setup, porch, "porch")
    assert answer["faces"]["enabled"] is False and answer["faces"]["people"] == []
    assert _gallery_json(setup)[0] == etag  # the yard's is as it was


def test_every_write_path_of_the_web_app_changes_the_etag(setup: Setup) -> None:
    """Rename, a new or deleted sample, the threshold, the camera's switch: each a new ETag."""
    def etag() -> str:
        with Session(setup.catalog) as session:
            return gallery_state(session).etag(True)

    with Session(setup.catalog) as session:
        carol = Person(name="Carol", name_key="carol")
        session.add(carol)
        session.commit()
        carol_id = carol.id
    changes = [
        insert(FaceSample).values(person_id=carol_id, embedding=bytes(512)),
        update(Person).where(Person.id == carol_id).values(
            name="Caroline", updated_at=utcnow() + dt.timedelta(days=1)),
        delete(FaceSample).where(FaceSample.person_id == carol_id),
        insert(Setting).values(key="faces.threshold", value="0.45"),
        update(Setting).where(Setting.key == "faces.threshold").values(value="0.5"),
        delete(Person).where(Person.id == carol_id),
    ]
    seen = {etag()}
    for change in changes:
        with setup.catalog.begin() as conn:
            conn.execute(change)
        seen.add(etag())
    assert len(seen) == len(changes) + 1
    with Session(setup.catalog) as session:
        assert gallery_state(session).etag(False) not in seen

