"""Face sightings in the catalog: one row per key, the final report's face, the hub's own match,
deleted with their footage (locks hold them), erased crops swept while the tombstone stays."""

from __future__ import annotations

import datetime as dt

import numpy as np
from sqlalchemy import select, update

from nvrlib.catalog.models import Camera, FaceSample, FaceSighting, Person, utcnow
from nvrlib.faces import embedding_to_bytes
from nvrlib.faces_gallery import Gallery, gallery_state, load_gallery
from recorder.store.catalog import Catalog
from recorder.store.faces import (
    GalleryCache, SightingFields, Stored, camera_faces, crop_path, note_faces_seen,
    store_sighting, sweep_erased,
)
from tests.recorder.test_retention import (  # noqa: F401  (fixtures: catalog, pg_cluster)
    BOTH_BACKENDS, add, ago, catalog, lock, make, pg_cluster,
)

FIRST_CROP = b"\xff\xd8\xff\xe0first" + bytes(64)
BEST_CROP = b"\xff\xd8\xff\xe0best" + bytes(64)


def unit(seed: int) -> np.ndarray:
    """A face-like embedding: random, of the length dlib's have (~1)."""
    vector = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return vector / np.linalg.norm(vector)


ALICE, BOB = unit(1), unit(2)


def near(embedding: np.ndarray, by: float, seed: int = 9) -> np.ndarray:
    """An embedding ``by`` away from ``embedding``."""
    step = unit(seed)
    return (embedding + by * step).astype(np.float32)


def sighting(key: str, start: dt.datetime, end: dt.datetime | None = None,
             embedding: np.ndarray = ALICE, crop: bytes = FIRST_CROP, size: int = 90,
             camera: str = "porch") -> SightingFields:
    return SightingFields(camera, key, start, end, (0.1, 0.2, 0.3, 0.4), size, 1.5, embedding,
                          crop)


def person(catalog: Catalog, name: str, *embeddings: np.ndarray) -> int:
    with catalog.sessions.begin() as session:
        row = Person(name=name, name_key=name.casefold())
        session.add(row)
        session.flush()
        for embedding in embeddings:
            session.add(FaceSample(person_id=row.id, embedding=embedding_to_bytes(embedding)))
        return row.id


def gallery(catalog: Catalog) -> Gallery:
    with catalog.session() as session:
        return load_gallery(session)


def camera_id(catalog: Catalog, name: str) -> int:
    found = camera_faces(catalog, name)
    assert found is not None
    return found.camera_id


def rows(catalog: Catalog) -> dict[str, FaceSighting]:
    with catalog.session() as session:
        return {row.sighting_key: row for row in session.scalars(select(FaceSighting))}


@BOTH_BACKENDS
def test_first_and_final_reports_are_one_row_named_by_the_hubs_gallery(catalog):
    add(catalog, "porch", ago(seconds=60))
    porch = camera_id(catalog, "porch")
    alice = person(catalog, "Alice", ALICE)
    person(catalog, "Bob", BOB)
    start = ago(seconds=30)
    first = store_sighting(catalog, sighting("r-f1", start, embedding=near(ALICE, 0.3)), porch,
                           gallery(catalog))
    assert first.outcome is Stored.STORED and first.person == (alice, "Alice")
    row = rows(catalog)["r-f1"]
    assert row.end_time is None and row.person_id == alice and 0.29 < row.distance < 0.31
    crop = catalog.storage.root / row.crop_path
    assert crop == crop_path(catalog, "porch", start, "r-f1")
    assert row.crop_path.startswith(f"porch/{start:%Y-%m-%d}/faces/")
    assert crop.read_bytes() == FIRST_CROP

    end = start + dt.timedelta(seconds=12)
    for _ in range(2):  # the final report, sent twice (the edge's spool retried it)
        final = store_sighting(catalog, sighting("r-f1", start, end, near(ALICE, 0.1),
                                                 BEST_CROP, size=140), porch, gallery(catalog))
        assert final.person == (alice, "Alice")
    row = rows(catalog)["r-f1"]
    assert row.end_time == end and row.face_size == 140 and 0.09 < row.distance < 0.11
    assert crop.read_bytes() == BEST_CROP and row.hub_id == "main"
    assert not list(crop.parent.glob("*.part"))

    # a late copy of the first report widens nothing and leaves the best face alone
    store_sighting(catalog, sighting("r-f1", start, embedding=near(ALICE, 0.3)), porch,
                   gallery(catalog))
    again = rows(catalog)["r-f1"]
    assert (again.end_time, again.face_size, again.distance) == (end, 140, row.distance)
    assert crop.read_bytes() == BEST_CROP


def test_a_face_beyond_the_threshold_is_unknown_and_an_empty_gallery_has_no_distance(catalog):
    add(catalog, "porch", ago(seconds=60))
    porch = camera_id(catalog, "porch")
    empty = store_sighting(catalog, sighting("k-1", ago(seconds=20)), porch, gallery(catalog))
    assert empty.person is None and rows(catalog)["k-1"].distance is None
    person(catalog, "Bob", BOB)
    far = store_sighting(catalog, sighting("k-2", ago(seconds=10)), porch, gallery(catalog))
    assert far.person is None and rows(catalog)["k-2"].distance > 0.6


def test_a_key_of_another_camera_is_refused_and_writes_nothing(catalog):
    add(catalog, "porch", ago(seconds=60))
    add(catalog, "yard", ago(seconds=60))
    store_sighting(catalog, sighting("k-1", ago(seconds=30)), camera_id(catalog, "porch"),
                   gallery(catalog))
    refused = store_sighting(catalog, sighting("k-1", ago(seconds=30), camera="yard",
                                               crop=BEST_CROP), camera_id(catalog, "yard"),
                             gallery(catalog))
    assert refused.outcome is Stored.OTHER_CAMERA
    assert rows(catalog)["k-1"].camera_id == camera_id(catalog, "porch")
    assert not (catalog.storage.root / "yard" / f"{ago(seconds=30):%Y-%m-%d}" / "faces").exists()


@BOTH_BACKENDS
def test_an_erased_sighting_loses_its_crop_keeps_its_tombstone_and_ignores_late_reports(catalog):
    add(catalog, "porch", ago(seconds=60))
    porch = camera_id(catalog, "porch")
    start = ago(seconds=30)
    store_sighting(catalog, sighting("gone-f1", start), porch, gallery(catalog))
    store_sighting(catalog, sighting("kept-f2", start), porch, gallery(catalog))
    crop = catalog.storage.root / rows(catalog)["gone-f1"].crop_path
    with catalog.sessions.begin() as session:  # what the web app does when a person is deleted
        session.execute(update(FaceSighting).where(FaceSighting.sighting_key == "gone-f1")
                        .values(person_id=None, embedding=None, erased_at=utcnow()))
    assert sweep_erased(catalog) == 1 and sweep_erased(catalog) == 0
    assert not crop.exists() and rows(catalog)["gone-f1"].crop_path is None
    assert (catalog.storage.root / rows(catalog)["kept-f2"].crop_path).exists()

    late = store_sighting(catalog, sighting("gone-f1", start, start + dt.timedelta(seconds=9),
                                            crop=BEST_CROP), porch, gallery(catalog))
    assert late.outcome is Stored.ERASED and late.person is None
    row = rows(catalog)["gone-f1"]
    assert (row.end_time, row.embedding, row.crop_path) == (None, None, None)
    assert not crop.exists()


def test_the_sweep_refuses_a_crop_path_outside_the_root_or_its_folder(catalog, tmp_path):
    add(catalog, "porch", ago(seconds=60))
    porch = camera_id(catalog, "porch")
    outside = tmp_path / "precious.jpg"
    outside.write_bytes(FIRST_CROP)
    footage = next((catalog.storage.root / "porch").rglob("*.ts"))
    for n, path in enumerate(["../precious.jpg", str(footage.relative_to(catalog.storage.root))]):
        store_sighting(catalog, sighting(f"evil-{n}", ago(seconds=30)), porch, gallery(catalog))
        with catalog.sessions.begin() as session:
            session.execute(update(FaceSighting).where(FaceSighting.sighting_key == f"evil-{n}")
                            .values(crop_path=path, erased_at=utcnow()))
    assert sweep_erased(catalog) == 2
    assert outside.exists() and footage.exists()
    assert all(row.crop_path is None for row in rows(catalog).values())


@BOTH_BACKENDS
def test_retention_deletes_sightings_and_crops_with_their_footage_unless_locked(catalog):
    for days in (3, 2, 1):  # 10-s segments at these ages; days = 1.5 deletes the first two
        add(catalog, "porch", ago(days))
    porch = camera_id(catalog, "porch")
    g = gallery(catalog)
    old = ago(3) + dt.timedelta(seconds=2)
    store_sighting(catalog, sighting("old", old, old + dt.timedelta(seconds=5)), porch, g)
    store_sighting(catalog, sighting("open", ago(2.2)), porch, g)  # its edge died: no end
    store_sighting(catalog, sighting("locked", ago(2.1), ago(2.1) + dt.timedelta(seconds=5)),
                   porch, g)
    store_sighting(catalog, sighting("new", ago(1), ago(1) + dt.timedelta(seconds=5)), porch, g)
    store_sighting(catalog, sighting("other-hub", ago(2.4), ago(2.4) + dt.timedelta(seconds=5)),
                   porch, g)
    with catalog.sessions.begin() as session:
        session.execute(update(FaceSighting).where(FaceSighting.sighting_key == "other-hub")
                        .values(hub_id="b"))
    lock(catalog, "porch", ago(2.1), ago(2.1) + dt.timedelta(seconds=1))
    old_crop = catalog.storage.root / rows(catalog)["old"].crop_path
    make(catalog, days=1.5).run_pass()
    assert set(rows(catalog)) == {"locked", "new", "other-hub"}
    assert not old_crop.exists() and not old_crop.parent.exists()  # the faces folder went
    assert not old_crop.parent.parent.exists()  # and the day folder, empty now
    assert (catalog.storage.root / rows(catalog)["new"].crop_path).exists()


def test_faces_seen_at_is_written_at_most_once_a_minute(catalog):
    add(catalog, "porch", ago(seconds=60))
    now = utcnow()
    found = camera_faces(catalog, "porch")
    assert found is not None and found.faces_seen_at is None and found.faces_enabled
    assert note_faces_seen(catalog, found, now)
    found = camera_faces(catalog, "porch")
    assert found is not None and found.faces_seen_at == now
    assert not note_faces_seen(catalog, found, now + dt.timedelta(seconds=59))
    assert note_faces_seen(catalog, found, now + dt.timedelta(seconds=60))


def test_the_gallery_cache_reads_the_catalog_again_only_when_its_etag_changes(catalog):
    add(catalog, "porch", ago(seconds=60))
    clock = [0.0]
    cache = GalleryCache(clock=lambda: clock[0])
    first = cache.get(catalog)
    alice = person(catalog, "Alice", ALICE)
    assert cache.get(catalog) is first  # within the second: not even looked at
    clock[0] += 1.0
    second = cache.get(catalog)
    assert second is not first and [p.name for p in second.people] == ["Alice"]
    clock[0] += 1.0
    assert cache.get(catalog) is second  # nothing changed: the same object
    with catalog.sessions.begin() as session:
        session.execute(update(Person).where(Person.id == alice)
                        .values(name="Alicia", updated_at=utcnow() + dt.timedelta(seconds=1)))
        session.execute(update(Camera).values(faces_enabled=False))
    clock[0] += 1.0
    assert [p.name for p in cache.get(catalog).people] == ["Alicia"]
    with catalog.session() as session:
        state = gallery_state(session)
    assert state.etag(True) != state.etag(False) and len(state.etag(True)) == 16
