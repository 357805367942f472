"""Faces turned into sightings: one per person per debounce window, its best face kept.

Pure (numpy and ``nvrlib.faces``' pure functions, no dlib), like ``nvrlib.motion.EventTracker``;
docs/design/faces.md, "Debouncing". The worker process finds faces (``FaceResult``); this
decides **who** (the hub's gallery, else an unknown track), **opens** a sighting on a key's
first face and reports it at once, keeps the **best face** while the window lasts and
**closes** it when the window is over or the stream stops, reporting it again with its end.
"""

from __future__ import annotations

import base64
import dataclasses
import math
import secrets
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from nvrlib.faces import MATCH_THRESHOLD, embedding_to_json, match

DEFAULT_DEBOUNCE = 30.0  # seconds: one sighting per person per window
MAX_TRACKS = 16  # open sightings at once; beyond, the oldest is closed early
TRACK_EMBEDDINGS = 5  # an unknown track remembers this many of its faces' embeddings


@dataclasses.dataclass(frozen=True, eq=False)  # eq=False: numpy arrays inside
class FaceResult:
    """One face the worker found in a frame (pixels of that frame)."""

    wall: float  # when the frame was captured, Unix seconds
    frame_w: int
    frame_h: int
    box: tuple[int, int, int, int]  # x, y, w, h
    size: int  # the box's smaller side
    score: float  # HOG score
    embedding: np.ndarray  # float32 (128,)
    crop: bytes  # JPEG


@dataclasses.dataclass(frozen=True)
class Gallery:
    """The hub's known faces: person id -> embeddings, names, the threshold and its ETag."""

    etag: str = ""
    threshold: float = MATCH_THRESHOLD
    people: Mapping[int, Sequence[np.ndarray]] = dataclasses.field(default_factory=dict)
    names: Mapping[int, str] = dataclasses.field(default_factory=dict)
    enabled: bool = True  # an admin's switch for this camera


@dataclasses.dataclass(eq=False)
class Sighting:
    """One sighting as the edge reports it (``end`` None on the first report)."""

    key: str
    start: float
    last_seen: float
    person: int | None
    distance: float | None  # to the nearest gallery embedding; None: an empty gallery
    gallery: str  # the ETag matched with
    face: FaceResult  # the best face so far
    end: float | None = None

    def to_json(self) -> dict[str, object]:
        """The body of ``POST /ingest/v1/<camera>/faces`` (faces.md section 2)."""
        face = self.face
        x, y, w, h = face.box
        box = [x / face.frame_w, y / face.frame_h, w / face.frame_w, h / face.frame_h]
        return {"sighting_key": self.key, "start": round(self.start, 3),
                "end": None if self.end is None else round(self.end, 3),
                "person": self.person,
                "distance": None if self.distance is None else round(self.distance, 4),
                "gallery": self.gallery, "box": [round(v, 4) for v in box],
                "size": face.size, "score": round(face.score, 4),
                "embedding": embedding_to_json(face.embedding),
                "crop": base64.b64encode(face.crop).decode("ascii")}


@dataclasses.dataclass(eq=False)
class _Track:
    """An open sighting and, for an unknown face, the embeddings that tell it apart."""

    sighting: Sighting
    embeddings: list[np.ndarray]


class SightingTracker:
    """Debounces faces into sightings: report at the first face, again at the window's end."""

    def __init__(self, report: Callable[[Sighting], None], *,
                 debounce: float = DEFAULT_DEBOUNCE, run_id: str | None = None,
                 max_tracks: int = MAX_TRACKS) -> None:
        self.report = report
        self.debounce = debounce
        self.max_tracks = max_tracks
        self.run_id = run_id or secrets.token_hex(8)  # keys "<run>-f<n>": fit EVENT_KEY_RE
        self.gallery = Gallery()  # replaced whole by set_gallery (from another thread)
        self._count = 0  # sightings opened
        self._unknowns = 0  # unknown tracks made
        self._tracks: dict[object, _Track] = {}  # ("p", id) or ("u", n) -> track, oldest first

    def set_gallery(self, gallery: Gallery) -> None:
        """Match with ``gallery`` from now on (one assignment: safe from another thread)."""
        self.gallery = gallery

    def update(self, face: FaceResult) -> int | None:
        """Take one face; return the person it is (None: unknown), for the overlay's label."""
        self.tick(face.wall)
        gallery = self.gallery
        found = match(face.embedding, gallery.people, gallery.threshold)
        distance = None if math.isinf(found.distance) else found.distance
        key = ("p", found.person) if found.person is not None else self._unknown_key(face, gallery)
        track = self._tracks.get(key)
        if track is None and found.person is not None:
            track = self._name_unknown(face, found.person, distance, gallery)
        if track is None:
            self._open(key, face, found.person, distance, gallery.etag)
        else:
            self._improve(track, face, distance)
        return found.person

    def tick(self, wall: float) -> None:
        """Close every sighting whose window is over at ``wall`` (call about once a second)."""
        for key in [k for k, t in self._tracks.items() if wall - t.sighting.start >= self.debounce]:
            self._close(key)

    def flush(self) -> None:
        """Close every open sighting (the stream stops)."""
        for key in list(self._tracks):
            self._close(key)

    @property
    def open_count(self) -> int:
        """How many sightings are open."""
        return len(self._tracks)

    def _unknown_key(self, face: FaceResult, gallery: Gallery) -> object:
        """The open unknown track nearest within the threshold, else a new track's key."""
        unknown = {k: t.embeddings for k, t in self._tracks.items() if k[0] == "u"}
        nearest = match(face.embedding, unknown, gallery.threshold)
        if nearest.person is not None:
            return nearest.person
        self._unknowns += 1
        return ("u", self._unknowns)

    def _name_unknown(self, face: FaceResult, person: int, distance: float | None,
                      gallery: Gallery) -> _Track | None:
        """The open unknown track of this face, now the person's: a gallery that arrived (the
        edge's first, or an enrollment) names it instead of opening a second sighting."""
        unknown = {k: t.embeddings for k, t in self._tracks.items() if k[0] == "u"}
        nearest = match(face.embedding, unknown, gallery.threshold)
        if nearest.person is None:
            return None
        track = self._tracks.pop(nearest.person)
        sighting = track.sighting  # its face and distance from now on: this face's, matched
        sighting.person, sighting.distance, sighting.face = person, distance, face
        sighting.gallery = gallery.etag
        self._tracks[("p", person)] = track
        return track

    def _open(self, key: object, face: FaceResult, person: int | None,
              distance: float | None, etag: str) -> None:
        while len(self._tracks) >= self.max_tracks:
            self._close(next(iter(self._tracks)))  # the oldest, early
        self._count += 1
        sighting = Sighting(f"{self.run_id}-f{self._count}", face.wall, face.wall, person,
                            distance, etag, face)
        self._tracks[key] = _Track(sighting, [face.embedding])
        self.report(dataclasses.replace(sighting))

    def _improve(self, track: _Track, face: FaceResult, distance: float | None) -> None:
        sighting = track.sighting
        sighting.last_seen = max(sighting.last_seen, face.wall)
        if sighting.person is None:
            track.embeddings = [*track.embeddings, face.embedding][-TRACK_EMBEDDINGS:]
        if _better(face, distance, sighting):
            sighting.face, sighting.distance = face, distance
            sighting.gallery = self.gallery.etag

    def _close(self, key: object) -> None:
        track = self._tracks.pop(key)
        sighting = track.sighting
        sighting.end = max(sighting.last_seen, sighting.start)
        self.report(sighting)


def _better(face: FaceResult, distance: float | None, sighting: Sighting) -> bool:
    """A person's best face is the nearest to the gallery; an unknown's the largest (then score)."""
    best = sighting.face
    if sighting.person is not None and distance is not None and sighting.distance is not None:
        if distance != sighting.distance:
            return distance < sighting.distance
    elif face.size != best.size:
        return face.size > best.size
    return face.score > best.score
