"""The gallery: every person's enrolled embeddings, as the hub matches with and edges fetch it.

Shared by the hub (``GET /ingest/v1/<camera>/faces-gallery``, its re-match of each sighting) and
the web app (enrollment's checks). Its version is an **ETag derived from the catalog**, never
stored: the first 16 hex of SHA-256 over the people's count and latest ``updated_at``, the
samples' count and highest id, the ``faces.threshold`` setting and the camera's
``faces_enabled``. Every write path (add, rename, merge or delete a person or a sample, the
threshold, the camera's switch) changes one of them, so none can forget to bump a version
(docs/design/faces.md, section 2).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import json
import logging
import math
from collections.abc import Mapping

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nvrlib.catalog.models import FaceSample, Person, Setting
from nvrlib.faces import MATCH_THRESHOLD, Match, embedding_from_bytes, embedding_to_json, match

logger = logging.getLogger(__name__)

THRESHOLD_KEY = "faces.threshold"
MIN_THRESHOLD, MAX_THRESHOLD = 0.40, 0.70
MAX_SAMPLES_PER_PERSON = 20  # enrollment refuses more (409): it bounds the gallery's size
MAX_GALLERY_EMBEDDINGS = 2000  # ~5.5 MB of JSON at most; edges read it with an 8 MiB cap
ETAG_HEX = 16


class ThresholdError(ValueError):
    """A ``faces.threshold`` value that is not a number within its limits."""


def parse_threshold(text: str | None) -> float:
    """Read the ``faces.threshold`` setting (empty or absent: dlib's 0.6); ThresholdError if bad."""
    if text is None or not text.strip():
        return MATCH_THRESHOLD
    try:
        value = float(text)
    except ValueError:
        raise ThresholdError(f"{THRESHOLD_KEY} must be a number, not {text!r}") from None
    if not math.isfinite(value) or not MIN_THRESHOLD <= value <= MAX_THRESHOLD:
        raise ThresholdError(f"{THRESHOLD_KEY} must be within {MIN_THRESHOLD:.2f}.."
                             f"{MAX_THRESHOLD:.2f}, not {text!r}")
    return value


@dataclasses.dataclass(frozen=True)
class GalleryState:
    """What the ETag is derived from, but the camera's switch: one cheap query."""

    people: int
    people_updated: dt.datetime | None
    samples: int
    last_sample: int | None
    threshold: float

    def etag(self, enabled: bool) -> str:
        """The gallery's ETag as one camera's edge sees it (without the quotes)."""
        updated = self.people_updated.isoformat() if self.people_updated else ""
        text = (f"{self.people}|{updated}|{self.samples}|{self.last_sample or 0}|"
                f"{self.threshold!r}|{int(enabled)}")
        return hashlib.sha256(text.encode()).hexdigest()[:ETAG_HEX]


def read_threshold(session: Session) -> float:
    """The ``faces.threshold`` setting; a bad row (not written by the web app) is logged and
    read as the default, so it never turns recognition off."""
    text = session.scalar(select(Setting.value).where(Setting.key == THRESHOLD_KEY))
    try:
        return parse_threshold(text)
    except ThresholdError as exc:
        logger.warning("ignoring a bad setting: %s", exc)
        return MATCH_THRESHOLD


def gallery_state(session: Session) -> GalleryState:
    """Read what the ETag is derived from (two aggregate queries and the threshold)."""
    people, updated = session.execute(
        select(func.count(Person.id), func.max(Person.updated_at))).one()
    samples, last = session.execute(
        select(func.count(FaceSample.id), func.max(FaceSample.id))).one()
    return GalleryState(people, updated, samples, last, read_threshold(session))


@dataclasses.dataclass(frozen=True)
class GalleryPerson:
    """One person of the gallery with their enrolled embeddings."""

    id: int
    name: str
    embeddings: tuple[np.ndarray, ...]


@dataclasses.dataclass(frozen=True)
class Gallery:
    """Everyone enrolled, read at one ``state``."""

    state: GalleryState
    people: tuple[GalleryPerson, ...]

    def by_id(self) -> Mapping[int, GalleryPerson]:
        """The people by id."""
        return {person.id: person for person in self.people}

    def match(self, embedding: np.ndarray) -> Match[int]:
        """Look an embedding up among everyone's samples, at the gallery's threshold."""
        return match(embedding, {p.id: p.embeddings for p in self.people}, self.state.threshold)

    def answer(self, camera: str, enabled: bool) -> str:
        """The faces-gallery route's JSON answer for ``camera``, as text.

        The people (up to ~5.5 MB of JSON) are encoded once per gallery, not once per edge:
        every camera's answer splices the same text in.
        """
        faces = {"enabled": enabled, "etag": self.state.etag(enabled),
                 "threshold": self.state.threshold}
        head = json.dumps({"camera": camera, "faces": faces})
        assert head.endswith("}}")
        return f'{head[:-2]}, "people": {self._people_json if enabled else "[]"}}}}}\n'

    @functools.cached_property
    def _people_json(self) -> str:
        return json.dumps([{"id": p.id, "name": p.name,
                            "embeddings": [embedding_to_json(e) for e in p.embeddings]}
                           for p in self.people])


def load_gallery(session: Session, state: GalleryState | None = None) -> Gallery:
    """Read every person and sample (a sample whose embedding is unreadable is skipped)."""
    state = state or gallery_state(session)
    names = dict(session.execute(select(Person.id, Person.name)).all())
    embeddings: dict[int, list[np.ndarray]] = {person: [] for person in names}
    for sample_id, person_id, data in session.execute(
            select(FaceSample.id, FaceSample.person_id, FaceSample.embedding)
            .order_by(FaceSample.person_id, FaceSample.id)):
        try:
            embeddings.setdefault(person_id, []).append(embedding_from_bytes(data))
        except ValueError as exc:
            logger.warning("face sample %d is unreadable (%s): left out of the gallery",
                           sample_id, exc)
    people = tuple(GalleryPerson(person, names[person], tuple(embeddings[person]))
                   for person in sorted(names, key=lambda p: (names[p].casefold(), p)))
    return Gallery(state, people)
