"""Face sightings in the catalog and their crops on disk (docs/design/faces.md, section 3).

Every function runs on the hub's single catalog thread. A crop lives beside its camera's
footage, ``<storage>/<camera>/<YYYY-MM-DD>/faces/<sighting_key>.jpg`` (the UTC day the sighting
started), and is fsynced before its row names it. An edge reports a sighting at its start and
again at its end with the best face of its window: the hub keeps one row per ``sighting_key``,
re-matches every report's embedding against its own gallery, and the final report replaces the
face. Retention deletes rows and crops with the footage (``expire_sightings``); a sighting whose
person was deleted is **erased** (the web app sets ``erased_at``): the hub's face job unlinks its
crop (``sweep_erased``) and the row stays as a tombstone, so a late report of it is ignored.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nvrlib.catalog.models import MAX_SIGHTING_SECONDS, Camera, FaceSighting, Person, utcnow
from nvrlib.faces import embedding_to_bytes
from nvrlib.faces_gallery import Gallery, gallery_state, load_gallery
from recorder.store.catalog import Catalog
from recorder.store.motion import (
    BATCH, PictureRows, expire_with_footage, snapshot_path, unlink_snapshots, write_snapshot,
)

logger = logging.getLogger(__name__)

FACES_FOLDER = "faces"
SEEN_EVERY = dt.timedelta(minutes=1)  # cameras.faces_seen_at is written at most this often
GALLERY_CHECK_SECONDS = 1.0  # the gallery's ETag is read again at most this often
# a sighting whose final report never came (its edge died) goes with the footage all the same
SIGHTING_ROWS = PictureRows(FaceSighting, FaceSighting.crop_path, FACES_FOLDER, "face sighting",
                            open_span=dt.timedelta(seconds=MAX_SIGHTING_SECONDS))


@dataclasses.dataclass(frozen=True)
class CameraFaces:
    """What the faces routes need of a camera's row."""

    camera_id: int
    hub_id: str
    camera_enabled: bool
    approval: str  # approved | pending | rejected
    faces_enabled: bool
    faces_seen_at: dt.datetime | None


@dataclasses.dataclass(frozen=True)
class SightingFields:
    """What one report says of a sighting (recorder.ingest.faces.SightingReport, plain)."""

    camera: str
    sighting_key: str
    start: dt.datetime
    end: dt.datetime | None
    box: tuple[float, float, float, float]
    size: int
    score: float
    embedding: np.ndarray = dataclasses.field(repr=False)
    crop: bytes = dataclasses.field(repr=False)


class Stored(enum.Enum):
    """What became of a report."""

    STORED = "stored"
    OTHER_CAMERA = "other_camera"  # the key is another camera's: 409
    ERASED = "erased"  # a tombstone's key: answered 200, nothing written


@dataclasses.dataclass(frozen=True)
class StoreResult:
    """A report's outcome and the person the row names now (None: unknown)."""

    outcome: Stored
    person: tuple[int, str] | None = None


def camera_faces(catalog: Catalog, camera: str) -> CameraFaces | None:
    """Return a camera's face switches and hub, or None if the catalog has no such camera."""
    with catalog.session() as session:
        row = session.execute(select(
            Camera.id, Camera.hub_id, Camera.enabled, Camera.approval, Camera.faces_enabled,
            Camera.faces_seen_at).where(Camera.name == camera)).first()
    return None if row is None else CameraFaces(*row)


def note_faces_seen(catalog: Catalog, found: CameraFaces, now: dt.datetime | None = None) -> bool:
    """Set ``cameras.faces_seen_at`` (the UI's "faces on") at most once a minute; True: set."""
    now = now or utcnow()
    if found.faces_seen_at is not None and now - found.faces_seen_at < SEEN_EVERY:
        return False
    with catalog.sessions.begin() as session:
        session.execute(update(Camera).where(Camera.id == found.camera_id)
                        .values(faces_seen_at=now))
    return True


def crop_path(catalog: Catalog, camera: str, start: dt.datetime, key: str) -> Path:
    """Where a sighting's crop lives: <camera>/<UTC day of its start>/faces/<key>.jpg."""
    return snapshot_path(catalog.storage, camera, start, key, FACES_FOLDER)


def store_sighting(catalog: Catalog, sighting: SightingFields, camera_id: int,
                   gallery: Gallery) -> StoreResult:
    """Insert or update a sighting by its key, crop first, named by the hub's own ``gallery``.

    The final report (with ``end``) replaces the face (box, size, score, embedding, crop,
    person, distance): it carries the best face of the window. A report sent twice changes
    nothing; a first report arriving after the final one only widens the times.
    """
    with catalog.session() as session:
        row = session.execute(select(FaceSighting.camera_id, FaceSighting.start_time,
                                     FaceSighting.end_time, FaceSighting.erased_at)
                              .where(FaceSighting.sighting_key == sighting.sighting_key)).first()
    if row is not None and row.camera_id != camera_id:
        return StoreResult(Stored.OTHER_CAMERA)
    if row is not None and row.erased_at is not None:
        return StoreResult(Stored.ERASED)
    replaces = row is None or sighting.end is not None or row.end_time is None
    relative = None
    if replaces:
        start = sighting.start if row is None else min(row.start_time, sighting.start)
        target = crop_path(catalog, sighting.camera, start, sighting.sighting_key)
        write_snapshot(target, sighting.crop)
        relative = str(catalog.storage.relative(target))
    found = gallery.match(sighting.embedding)
    try:
        with catalog.sessions.begin() as session:
            result = _upsert(session, catalog.hub_id, sighting, camera_id, relative,
                             found.person, found.distance)
    except IntegrityError:  # another hub of the catalog stored that key a moment ago
        result = StoreResult(Stored.OTHER_CAMERA)
    if result.outcome is not Stored.STORED and relative is not None:
        # erased (or taken) since the first look: the crop just written names no row
        unlink_snapshots(catalog.storage, [relative], FACES_FOLDER)
    return result


def _upsert(session: Session, hub_id: str, sighting: SightingFields, camera_id: int,
            crop: str | None, person_id: int | None, distance: float) -> StoreResult:
    row = session.scalar(select(FaceSighting).where(
        FaceSighting.sighting_key == sighting.sighting_key))
    if row is None:
        row = FaceSighting(sighting_key=sighting.sighting_key, camera_id=camera_id,
                           hub_id=hub_id, start_time=sighting.start)
        session.add(row)
    elif row.camera_id != camera_id:
        return StoreResult(Stored.OTHER_CAMERA)
    elif row.erased_at is not None:  # erased since the check above: the crop goes with the sweep
        return StoreResult(Stored.ERASED)
    row.start_time = min(row.start_time, sighting.start)
    if sighting.end is not None:
        row.end_time = max(row.end_time or sighting.end, sighting.end)
    if crop is not None:
        row.box_x, row.box_y, row.box_w, row.box_h = sighting.box
        row.face_size, row.score = sighting.size, sighting.score
        row.embedding = embedding_to_bytes(sighting.embedding)
        row.crop_path = crop
        row.person_id = person_id
        row.distance = distance if np.isfinite(distance) else None
    session.flush()
    name = session.scalar(select(Person.name).where(Person.id == row.person_id)) \
        if row.person_id is not None else None
    return StoreResult(Stored.STORED, None if name is None else (row.person_id, name))


class GalleryCache:
    """The hub's gallery, read again only when its ETag's inputs change (checked once a second)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._gallery: Gallery | None = None
        self._checked = -float("inf")

    def get(self, catalog: Catalog) -> Gallery:
        """The current gallery (catalog thread)."""
        if self._gallery is not None and self.clock() - self._checked < GALLERY_CHECK_SECONDS:
            return self._gallery
        with catalog.session() as session:
            state = gallery_state(session)
            if self._gallery is None or self._gallery.state != state:
                self._gallery = load_gallery(session, state)
                logger.info("face gallery: %d people, %d samples, threshold %.2f", state.people,
                            state.samples, state.threshold)
        self._checked = self.clock()
        return self._gallery


def expire_sightings(catalog: Catalog, cutoffs: Mapping[int, dt.datetime],
                     ) -> tuple[int, set[Path]]:
    """Delete this hub's sightings of each camera that ended by its cutoff (its deleted
    footage's end), unless a lock touches them; crops first. Return (rows, day folders touched).
    """
    return expire_with_footage(catalog, cutoffs, SIGHTING_ROWS)


def sweep_erased(catalog: Catalog) -> int:
    """Unlink the crops of this hub's erased sightings and clear their ``crop_path``; return how
    many. The rows stay as tombstones until retention deletes them with the footage."""
    swept = 0
    while True:
        with catalog.session() as session:
            rows = session.execute(
                select(FaceSighting.id, FaceSighting.crop_path)
                .where(FaceSighting.hub_id == catalog.hub_id, FaceSighting.erased_at.is_not(None),
                       FaceSighting.crop_path.is_not(None))
                .order_by(FaceSighting.id).limit(BATCH)).all()
        if not rows:
            break
        unlink_snapshots(catalog.storage, [path for _id, path in rows if path], FACES_FOLDER)
        with catalog.sessions.begin() as session:
            session.execute(update(FaceSighting).where(
                FaceSighting.id.in_([row_id for row_id, _path in rows])).values(crop_path=None))
        swept += len(rows)
    if swept:
        logger.info("faces: deleted the crops of %d erased sighting(s)", swept)
    return swept
