"""People and their faces in the web app: the only writer of ``people``, ``face_samples`` and
``face_sightings`` here (docs/design/faces.md, sections 3 and 4).

Enrolment adds a sample (an embedding and a crop) to a person, from an uploaded photo or from a
sighting a camera made. It is checked against the gallery first, so one careless click cannot
teach the cameras a wrong face: 409 when the face looks like someone else, or is far from the
person's other samples (``force`` overrides both). Deleting a person erases their sightings'
face data (tombstones the hub then clears of their crops); merging moves everything to the
other person. Each change is one transaction. Errors are FacesError subclasses whose
``status`` is the API's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from flask import url_for
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from nvrlib import faces
from nvrlib.catalog.models import Camera, FaceSample, FaceSighting, Person
from nvrlib.faces_gallery import MAX_GALLERY_EMBEDDINGS, MAX_SAMPLES_PER_PERSON, load_gallery

from . import face_engine, faces_settings, hub_storage
from .catalog_queries import iso_utc
from .extensions import db
from .ids import is_id
from .security import now
from .service_errors import ServiceError

logger = logging.getLogger(__name__)

MAX_NAME = 64
UNKNOWN = "unknown"  # the API's word for "no person": no one may be called that
MAX_RELABEL_SCAN = 10_000  # unknown sightings compared when naming similar ones, newest first
RECENT_UNKNOWN = 50  # the People page's "recent unknown faces"
MAX_CROP_BYTES = 48 * 1024  # as the ingest route's limit: a sighting crop larger is not kept


class FacesError(ServiceError):
    """A request about people the web app refuses; ``status`` is the HTTP status saying why."""


class BadRequest(FacesError):
    """Bad input (400)."""


class NotFound(FacesError):
    """No such person, sample or sighting (404)."""

    status = 404


class Conflict(FacesError):
    """The name is taken, a limit is reached, or the face does not fit (409)."""

    status = 409


class Unavailable(FacesError):
    """The face engine is not installed, or a hub's storage is not reachable (503)."""

    status = 503


@dataclass(frozen=True)
class SampleView:
    """One enrolled face of a person."""

    id: int
    person_id: int
    source: str
    created: dt.datetime
    has_crop: bool

    def crop_url(self) -> str | None:
        """Return the URL of its crop (None: it has none)."""
        if not self.has_crop:
            return None
        return url_for("api.sample_crop", person_id=self.person_id, sample_id=self.id)

    def to_json(self) -> dict[str, Any]:
        """Return the API's JSON object of the sample."""
        return {"id": self.id, "source": self.source, "created": iso_utc(self.created),
                "crop": self.crop_url()}


@dataclass(frozen=True)
class PersonView:
    """A person as the pages and the API show them."""

    id: int
    name: str
    alert: bool
    created: dt.datetime
    sample_count: int
    last_seen: tuple[dt.datetime, str] | None  # (time, camera) of the newest sighting
    samples: list[SampleView] = field(default_factory=list)  # filled for one person only
    first_sample: SampleView | None = None

    def to_json(self, with_samples: bool = False) -> dict[str, Any]:
        """Return the API's JSON object of the person (with their samples if asked)."""
        body: dict[str, Any] = {
            "id": self.id, "name": self.name, "alert": self.alert,
            "samples": self.sample_count, "created": iso_utc(self.created),
            "last_seen": ({"time": iso_utc(self.last_seen[0]), "camera": self.last_seen[1]}
                          if self.last_seen else None),
            "photo": self.first_sample.crop_url() if self.first_sample else None,
        }
        if with_samples:
            body["samples"] = [sample.to_json() for sample in self.samples]
        return body


# -- reading ------------------------------------------------------------------------------------

def _sample_view(row: FaceSample) -> SampleView:
    return SampleView(row.id, row.person_id, row.source, row.created_at, row.crop is not None)


def _last_seen(person_ids: list[int]) -> dict[int, tuple[dt.datetime, str]]:
    """Return each person's newest sighting (one backward probe of ix_face_person_start each,
    however many sightings they have)."""
    if not person_ids:
        return {}
    newest = (select(FaceSighting.id)
              .where(FaceSighting.person_id == Person.id, FaceSighting.erased_at.is_(None))
              .order_by(FaceSighting.start_time.desc()).limit(1)
              .correlate(Person).scalar_subquery())
    rows = db.session.execute(
        select(Person.id, FaceSighting.start_time, Camera.name)
        .join(FaceSighting, FaceSighting.id == newest)
        .join(Camera, Camera.id == FaceSighting.camera_id)
        .where(Person.id.in_(person_ids)))
    return {person_id: (at, camera) for person_id, at, camera in rows}


def _first_samples(person_ids: list[int]) -> dict[int, SampleView]:
    """Return each person's first sample that has a crop (their picture on the page)."""
    if not person_ids:
        return {}
    first = (select(func.min(FaceSample.id)).where(FaceSample.person_id.in_(person_ids),
                                                   FaceSample.crop.is_not(None))
             .group_by(FaceSample.person_id))
    rows = db.session.execute(
        select(FaceSample.id, FaceSample.person_id, FaceSample.source, FaceSample.created_at)
        .where(FaceSample.id.in_(first)))
    return {person_id: SampleView(sample_id, person_id, source, created, True)
            for sample_id, person_id, source, created in rows}


def _views(people: list[Person]) -> list[PersonView]:
    ids = [person.id for person in people]
    counts = dict(db.session.execute(
        select(FaceSample.person_id, func.count()).where(FaceSample.person_id.in_(ids))
        .group_by(FaceSample.person_id)).all()) if ids else {}
    seen, firsts = _last_seen(ids), _first_samples(ids)
    return [PersonView(person.id, person.name, person.alert, person.created_at,
                       counts.get(person.id, 0), seen.get(person.id), [],
                       firsts.get(person.id)) for person in people]


def list_people() -> list[PersonView]:
    """Return every person, by name."""
    return _views(list(db.session.scalars(select(Person).order_by(Person.name_key))))


def _person(person_id: int) -> Person:
    person = db.session.get(Person, person_id)
    if person is None:
        raise NotFound(f"there is no person with id {person_id}")
    return person


def _with_samples(views: list[PersonView]) -> list[PersonView]:
    """Fill in each person's samples, oldest first (one query; the crops are not read)."""
    samples: dict[int, list[SampleView]] = {view.id: [] for view in views}
    rows = db.session.execute(
        select(FaceSample.id, FaceSample.person_id, FaceSample.source, FaceSample.created_at,
               FaceSample.crop.is_not(None))
        .where(FaceSample.person_id.in_(list(samples))).order_by(FaceSample.id))
    for sample_id, person_id, source, created, has_crop in rows:
        samples[person_id].append(SampleView(sample_id, person_id, source, created,
                                             bool(has_crop)))
    return [dataclasses.replace(view, samples=samples[view.id]) for view in views]


def people_with_samples() -> list[PersonView]:
    """Return every person with their samples, by name (the People page)."""
    return _with_samples(list_people())


def get_person(person_id: int) -> PersonView:
    """Return one person with their samples, oldest first."""
    return _with_samples(_views([_person(person_id)]))[0]


def sample_crop(person_id: int, sample_id: int) -> bytes:
    """Return the JPEG crop of a person's sample (NotFound: no such sample, or no crop)."""
    crop = db.session.scalar(select(FaceSample.crop).where(FaceSample.id == sample_id,
                                                           FaceSample.person_id == person_id))
    if crop is None:
        raise NotFound(f"person {person_id} has no sample {sample_id} with a picture")
    return crop


# -- people ----------------------------------------------------------------------------------

def check_name(value: Any) -> str:
    """Check a person's name: 1-64 printable characters once trimmed, and not "unknown"."""
    if not isinstance(value, str):
        raise BadRequest("name: must be a string")
    name = value.strip()
    if not name:
        raise BadRequest("name: must not be empty")
    if len(name) > MAX_NAME or len(name.casefold()) > MAX_NAME:  # "ß" folds to "ss"
        raise BadRequest(f"name: at most {MAX_NAME} characters")
    if not name.isprintable():
        raise BadRequest("name: must not hold control characters")
    if name.casefold() == UNKNOWN:
        raise BadRequest(f"name: {UNKNOWN!r} is the word for a face no one knows; choose "
                         "another name")
    return name


def check_flag(value: Any, name: str) -> bool:
    """Check a JSON true/false."""
    if not isinstance(value, bool):
        raise BadRequest(f"{name}: must be true or false")
    return value


def _commit_name(what: str, name: str) -> None:
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict(f"name: there is already a person called {name!r}") from None
    logger.info("%s", what)


def create_person(name: Any, alert: Any, user: str) -> PersonView:
    """Add a person without samples yet."""
    name = check_name(name)
    person = Person(name=name, name_key=name.casefold(),
                    alert=check_flag(alert, "alert") if alert is not None else False,
                    created_at=now(), updated_at=now(), created_by=user[:64])
    db.session.add(person)
    _commit_name(f"person {name!r} added by {user}", name)
    return get_person(person.id)


def update_person(person_id: int, changes: dict[str, Any], user: str) -> PersonView:
    """Rename a person or switch their alert; ``changes`` holds ``name`` and/or ``alert``."""
    unknown = sorted(set(changes) - {"name", "alert"})
    if unknown:
        raise BadRequest(f"{unknown[0]}: unknown field; use name or alert")
    name = check_name(changes["name"]) if "name" in changes else None
    alert = check_flag(changes["alert"], "alert") if "alert" in changes else None
    person = _person(person_id)
    if name is not None:
        person.name, person.name_key = name, name.casefold()
    if alert is not None:
        person.alert = alert
    person.updated_at = now()  # the gallery's ETag: edges learn the new name
    _commit_name(f"person {person_id} changed by {user}: {', '.join(sorted(changes))}",
                 name or person.name)
    return get_person(person_id)


def _erase_sightings(person_id: int) -> int:
    """Erase a person's sightings: no name, no embedding; the hub unlinks their crops."""
    result = db.session.execute(
        update(FaceSighting).where(FaceSighting.person_id == person_id)
        .values(person_id=None, embedding=None, distance=None, erased_at=now()),
        execution_options={"synchronize_session": False})
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def delete_person(person_id: int, user: str) -> int:
    """Delete a person and their samples, and erase their sightings; return how many."""
    person = _person(person_id)
    name = person.name
    # the samples go explicitly: SQLite's foreign keys (ON DELETE CASCADE) may be off
    db.session.execute(delete(FaceSample).where(FaceSample.person_id == person_id),
                       execution_options={"synchronize_session": False})
    erased = _erase_sightings(person_id)
    db.session.execute(delete(Person).where(Person.id == person_id),
                       execution_options={"synchronize_session": False})
    db.session.commit()
    db.session.expire_all()
    logger.info("person %r deleted by %s; %d sightings erased", name, user, erased)
    return erased


def merge(person_id: int, into: Any, user: str) -> PersonView:
    """Move a person's samples and sightings to another person, then delete the first."""
    if not is_id(into):
        raise BadRequest("into: must be the id of another person")
    if into == person_id:
        raise BadRequest("into: a person cannot be merged into themselves")
    source, target = _person(person_id), _person(into)
    moving, having = _sample_count(person_id), _sample_count(into)
    if moving + having > MAX_SAMPLES_PER_PERSON:
        raise Conflict(f"{target.name} would have {moving + having} samples, more than "
                       f"{MAX_SAMPLES_PER_PERSON}: delete some first")
    name = source.name
    db.session.execute(update(FaceSample).where(FaceSample.person_id == person_id)
                       .values(person_id=into), execution_options={"synchronize_session": False})
    db.session.execute(update(FaceSighting).where(FaceSighting.person_id == person_id)
                       .values(person_id=into), execution_options={"synchronize_session": False})
    db.session.execute(delete(Person).where(Person.id == person_id),
                       execution_options={"synchronize_session": False})
    target.updated_at = now()
    db.session.commit()
    db.session.expire_all()
    logger.info("person %r merged into %r by %s", name, target.name, user)
    return get_person(into)


# -- samples ---------------------------------------------------------------------------------

def _sample_count(person_id: int) -> int:
    return db.session.scalar(select(func.count()).select_from(FaceSample)
                             .where(FaceSample.person_id == person_id)) or 0


def _check_fit(person: Person, embedding: np.ndarray, force: bool) -> None:
    """Refuse a face that would make the gallery wrong: full, someone else's, or far off."""
    if _sample_count(person.id) >= MAX_SAMPLES_PER_PERSON:
        raise Conflict(f"{person.name} has {MAX_SAMPLES_PER_PERSON} samples already: delete "
                       "one first")
    gallery = load_gallery(db.session)  # the hubs' own view of it, threshold included
    if gallery.state.samples >= MAX_GALLERY_EMBEDDINGS:
        raise Conflict(f"the gallery is full ({MAX_GALLERY_EMBEDDINGS} samples): delete some "
                       "first")
    if force:
        return
    limit = gallery.state.threshold
    others = {p.id: p.embeddings for p in gallery.people if p.id != person.id}
    other = faces.match(embedding, others, limit)
    if other.person is not None:
        raise Conflict(f"this face looks like {gallery.by_id()[other.person].name} "
                       f"({other.distance:.2f}); send force=1 if it is {person.name}")
    own = gallery.by_id()[person.id].embeddings
    if own:
        nearest = min(faces.distance(embedding, sample) for sample in own)
        if nearest > limit:
            raise Conflict(f"this face is {nearest:.2f} from {person.name}'s other samples "
                           f"(the same person is under {limit:.2f}); send force=1 if it is "
                           f"{person.name}")


def _add_sample(person: Person, embedding: np.ndarray, crop: bytes | None, source: str,
                user: str, sighting_id: int | None = None) -> FaceSample:
    sample = FaceSample(person_id=person.id, embedding=faces.embedding_to_bytes(embedding),
                        source=source, sighting_id=sighting_id, crop=crop, created_at=now(),
                        created_by=user[:64])
    db.session.add(sample)
    db.session.flush()
    return sample


def enroll_photo(person_id: int, photo: bytes, force: bool, user: str) -> SampleView:
    """Add a sample from a photo showing the person's face alone."""
    person = _person(person_id)
    try:
        face = face_engine.one_face(photo)
    except face_engine.PhotoRefused as exc:
        raise BadRequest(f"photo: {exc}") from None
    except face_engine.EngineMissing as exc:
        raise Unavailable(str(exc)) from None
    _check_fit(person, face.embedding, force)
    sample = _add_sample(person, face.embedding, face.crop, "photo", user)
    db.session.commit()
    logger.info("%s added a sample from a photo to %r (%d px face)", user, person.name,
                face.size)
    return _sample_view(sample)


def _sighting(sighting_id: Any) -> FaceSighting:
    if not is_id(sighting_id):
        raise BadRequest("sighting: must be the id of a face sighting")
    row = db.session.get(FaceSighting, sighting_id)
    if row is None or row.erased_at is not None:
        raise BadRequest(f"sighting: there is no face sighting {sighting_id}")
    if row.embedding is None:
        raise BadRequest(f"sighting: sighting {sighting_id} has no face data left")
    return row


def sighting_crop_file(sighting_id: int) -> Path | None:
    """Return the JPEG crop of a sighting in its hub's storage (None: none, erased, not on
    disk). Raises hub_storage.StorageUnreachable and hub_storage.OutsideStorage."""
    row = db.session.execute(select(FaceSighting.crop_path, FaceSighting.hub_id)
                             .where(FaceSighting.id == sighting_id,
                                    FaceSighting.erased_at.is_(None))).first()
    if row is None or not row.crop_path:
        return None
    return hub_storage.stored_file(row.hub_id, row.crop_path)


def sighting_crop(sighting_id: int) -> bytes | None:
    """Return the bytes of a sighting's crop (None: none, or larger than a crop can be)."""
    path = sighting_crop_file(sighting_id)
    if path is None or path.stat().st_size > MAX_CROP_BYTES:
        return None
    return path.read_bytes()


def sighting_crop_url(sighting_id: int) -> str:
    """Return the URL of a face sighting's crop."""
    return url_for("api.face_crop", sighting_id=sighting_id)


def _relabel(person_id: int, embedding: np.ndarray, limit: float) -> int:
    """Name the unknown sightings within ``limit`` of ``embedding`` (newest first, bounded)."""
    rows = db.session.execute(
        select(FaceSighting.id, FaceSighting.embedding)
        .where(FaceSighting.person_id.is_(None), FaceSighting.erased_at.is_(None),
               FaceSighting.embedding.is_not(None))
        .order_by(FaceSighting.start_time.desc()).limit(MAX_RELABEL_SCAN))
    named = 0
    for sighting_id, data in rows:
        try:
            gap = faces.distance(embedding, faces.embedding_from_bytes(data))
        except ValueError:
            continue
        if gap <= limit:
            db.session.execute(update(FaceSighting).where(FaceSighting.id == sighting_id)
                               .values(person_id=person_id, distance=gap),
                               execution_options={"synchronize_session": False})
            named += 1
    return named


def enroll_sighting(person_id: int, sighting_id: Any, relabel: bool, force: bool,
                    user: str) -> tuple[SampleView, int]:
    """Add a sample from a camera's sighting (and name that sighting); with ``relabel`` also
    name the unknown sightings like it. Return the sample and how many were named."""
    person = _person(person_id)
    row = _sighting(sighting_id)
    embedding = faces.embedding_from_bytes(row.embedding or b"")
    try:
        crop = sighting_crop(row.id)
    except hub_storage.StorageUnreachable as exc:
        raise Unavailable(str(exc)) from None
    except hub_storage.OutsideStorage:
        crop = None  # a wrong path in the catalog: the sample is still good without a picture
    _check_fit(person, embedding, force)
    sample = _add_sample(person, embedding, crop, "sighting", user, row.id)
    row.person_id, row.distance = person.id, 0.0
    named = _relabel(person.id, embedding, faces_settings.threshold()) if relabel else 0
    db.session.commit()
    logger.info("%s added a sample from sighting %d to %r; %d similar sightings named", user,
                row.id, person.name, named)
    return _sample_view(sample), named


def delete_sample(person_id: int, sample_id: int, user: str) -> None:
    """Delete one sample of a person."""
    result = db.session.execute(delete(FaceSample).where(FaceSample.id == sample_id,
                                                         FaceSample.person_id == person_id),
                                execution_options={"synchronize_session": False})
    if not result.rowcount:  # type: ignore[attr-defined]
        db.session.rollback()
        raise NotFound(f"person {person_id} has no sample {sample_id}")
    db.session.commit()
    logger.info("%s deleted sample %d of person %d", user, sample_id, person_id)


# -- sightings for the People page -------------------------------------------------------------

@dataclass(frozen=True)
class UnknownFace:
    """A recent sighting of a face no one knows (the People page's "This is...")."""

    id: int
    camera: str
    start: dt.datetime
    has_crop: bool


def recent_unknown(limit: int = RECENT_UNKNOWN) -> list[UnknownFace]:
    """Return the newest unknown sightings that can still be enrolled from."""
    rows = db.session.execute(
        select(FaceSighting.id, Camera.name, FaceSighting.start_time,
               FaceSighting.crop_path.is_not(None))
        .join(Camera, Camera.id == FaceSighting.camera_id)
        .where(FaceSighting.person_id.is_(None), FaceSighting.erased_at.is_(None),
               FaceSighting.embedding.is_not(None))
        .order_by(FaceSighting.start_time.desc(), FaceSighting.id.desc()).limit(limit))
    return [UnknownFace(sighting_id, camera, start, bool(has_crop))
            for sighting_id, camera, start, has_crop in rows]
