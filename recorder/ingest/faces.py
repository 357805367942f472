"""Face sightings on the ingest port: ``POST /ingest/v1/<camera>/faces`` and
``GET /ingest/v1/<camera>/faces-gallery`` (docs/design/protocol.md, "Face sightings").

An edge reports each sighting at its start and again at the end of its debounce window with the
best face (its box, size, HOG score, embedding and a base64 JPEG crop); the hub answers 200 once
the crop and the row are durable, naming the person its own gallery matched and the gallery's
ETag, so an edge whose gallery is stale fetches it again. The gallery route answers 304 to an
``If-None-Match`` that names the current ETag. Parsing and limits only, with the motion
parser's helpers (recorder/ingest/events.py): bad input gets a 4xx naming the field.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import time
from typing import Any, Protocol

import h11
import numpy as np

from nvrlib.catalog.models import MAX_SIGHTING_SECONDS
from nvrlib.faces import embedding_from_json

from recorder.errors import IngestRejected
from recorder.ingest.events import (
    FACES, GALLERY, Exchange, MotionHandler, Reply, box_field, check_method, jpeg_field,
    json_object, key_field, number_field, read_json_body, time_span,
)

MAX_FACE_BODY_BYTES = 96 * 1024
MAX_CROP_BYTES = 48 * 1024  # decoded; a 160-px crop is ~8 kB
MAX_FACE_SIZE = 10_000  # pixels
MAX_HOG_SCORE = 100.0
MAX_DISTANCE = 10.0  # two unit-ish embeddings are never further apart than ~2
GALLERY_TAG_RE = re.compile(r"[0-9a-f]{0,64}")
_ETAG_ITEM = re.compile(r'\s*(?:W/)?"([^"]*)"\s*|\s*(\*)\s*')


@dataclasses.dataclass(frozen=True)
class SightingReport:
    """One validated report of a face sighting (its first: ``end`` None)."""

    camera: str
    sighting_key: str
    start: dt.datetime
    end: dt.datetime | None
    person: int | None  # the edge's match: a hint, the hub matches again
    distance: float | None  # the edge's distance to its nearest gallery embedding
    gallery: str  # the gallery ETag the edge matched with ("": none)
    box: tuple[float, float, float, float]  # x, y, w, h in 0..1 of the frame
    size: int  # the face's smaller side, pixels
    score: float  # HOG score
    embedding: np.ndarray = dataclasses.field(repr=False)  # float32 (128,)
    crop: bytes = dataclasses.field(repr=False)  # JPEG


@dataclasses.dataclass(frozen=True)
class GalleryReply:
    """The gallery route's answer: its ETag, and the JSON unless the edge has that version."""

    etag: str
    body: str | None  # the JSON text; None: not modified


class FaceHandler(MotionHandler, Protocol):
    """What the face routes ask of the hub (recorder.hub.Hub)."""

    async def record_sighting(self, report: SightingReport) -> dict[str, Any]:
        """Store the sighting durably; return {"person": {"id", "name"} | None, "gallery": etag}."""

    async def face_gallery(self, camera: str, if_none_match: str | None) -> GalleryReply:
        """The camera's gallery, or only its ETag when ``if_none_match`` names it."""


def parse_sighting(camera: str, body: bytes, now: float | None = None) -> SightingReport:
    """Validate a sighting's JSON body, or raise IngestRejected (400, 413) naming the bad field."""
    data = json_object(body)
    key = key_field(data, "sighting_key")
    now = time.time() if now is None else now
    start, end = time_span(data, now, MAX_SIGHTING_SECONDS)
    crop = jpeg_field(data.get("crop"), "crop", MAX_CROP_BYTES)
    if crop is None:
        raise IngestRejected(400, "crop is required: a base64 JPEG of the face")
    return SightingReport(
        camera, key, start, end, _person(data.get("person")),
        _optional_range(data.get("distance"), "distance", 0.0, MAX_DISTANCE),
        _gallery_tag(data.get("gallery", "")), box_field(data.get("box")),
        int(_range(data.get("size"), "size", 1, MAX_FACE_SIZE, integer=True)),
        _range(data.get("score"), "score", 0.0, MAX_HOG_SCORE), _embedding(data.get("embedding")),
        crop)


def _range(value: object, name: str, low: float, high: float, integer: bool = False) -> float:
    number = number_field(value, name)
    if integer and not number.is_integer():
        raise IngestRejected(400, f"{name} must be a whole number")
    if not low <= number <= high:
        raise IngestRejected(400, f"{name} must be within {low:g}..{high:g}")
    return number


def _optional_range(value: object, name: str, low: float, high: float) -> float | None:
    return None if value is None else _range(value, name, low, high)


def _person(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 2**63:
        raise IngestRejected(400, "person must be a person id (a positive whole number) or null")
    return value


def _gallery_tag(value: object) -> str:
    if not isinstance(value, str) or not GALLERY_TAG_RE.fullmatch(value):
        raise IngestRejected(400, "gallery must be the ETag the edge matched with (hex), or \"\"")
    return value


def _embedding(value: object) -> np.ndarray:
    try:
        return embedding_from_json(value)
    except ValueError as exc:
        raise IngestRejected(400, f"embedding: {exc}") from None


def etag_matches(header: str | None, etag: str) -> bool:
    """Tell whether an If-None-Match header names ``etag`` (or is ``*``); weak tags count."""
    if not header:
        return False
    for item in header.split(","):
        found = _ETAG_ITEM.fullmatch(item)
        if found and (found.group(2) == "*" or found.group(1) == etag):
            return True
    return False


async def serve(handler: FaceHandler, connection: Exchange, request: h11.Request,
                camera: str, route: str, token: str | None, timeout: float) -> Reply:
    """Answer one face request (FACES or GALLERY). Raises IngestRejected."""
    check_method(route, request.method)
    handler.check_motion_access(camera, token)
    if route == GALLERY:
        headers = {name.lower(): value for name, value in request.headers}
        match = headers.get(b"if-none-match")
        found = await handler.face_gallery(camera, match.decode("latin-1") if match else None)
        etag = (("ETag", f'"{found.etag}"'),)
        return Reply(304, None, etag) if found.body is None else Reply(200, found.body, etag)
    assert route == FACES
    body = await read_json_body(connection, request, timeout, MAX_FACE_BODY_BYTES,
                                "the sighting's body")
    report = parse_sighting(camera, body)
    answer = await handler.record_sighting(report)
    return Reply(200, {"camera": camera, "sighting_key": report.sighting_key, **answer})
