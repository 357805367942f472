"""Face sightings to the hub, and the hub's face gallery back (faces.md section 2).

Each sighting is reported at its start and again at its end (``POST .../faces``), queued in an
``EventQueue`` under ``<spool>/.faces/<camera>/`` until the hub answers 200: the send loop is
the motion events' (``ReportSender``). The gallery (who is known, the threshold, the camera's
switch) is polled with ``If-None-Match`` every GALLERY_POLL_SECONDS, and at once when an answer
names another gallery than the edge's. It is held in memory only, never on the edge's disk.
A hub without the face routes (404 that is not "unknown camera") is told to ``on_supported``
(the worker stops: the hub would drop every sighting) and asked again every 60 s.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable

from nvrlib.faces import embedding_from_json

from .backoff import Backoff
from .face_tracker import Gallery, Sighting
from .reports import (
    EventQueue, ReportSender, camera_not_yet_known, first_line, hub_request, route_path,
)
from .uplink import HubAddress

logger = logging.getLogger(__name__)

GALLERY_POLL_SECONDS = 30.0
UNSUPPORTED_POLL_SECONDS = 60.0  # an older hub: no faces routes
NOT_YET_KNOWN_POLL_SECONDS = 5.0  # the camera's first stream is still being admitted
MAX_GALLERY_BYTES = 8 * 1024 * 1024  # 2000 embeddings as JSON are ~5.5 MB
MAX_QUEUED = 500  # sightings, ~12 kB each: ~6 MB
MAX_ETAG_LENGTH = 64


class BadGallery(ValueError):
    """The hub's gallery answer is not what the protocol says."""


def gallery_from_json(data: object) -> Gallery:
    """The ``faces`` object of a gallery answer as a Gallery; BadGallery says what is wrong."""
    faces = data.get("faces") if isinstance(data, dict) else None
    if not isinstance(faces, dict):
        raise BadGallery("the answer has no faces object")
    enabled, etag = faces.get("enabled"), faces.get("etag")
    threshold, people = faces.get("threshold"), faces.get("people")
    if not isinstance(enabled, bool):
        raise BadGallery("faces.enabled must be true or false")
    if not isinstance(etag, str) or len(etag) > MAX_ETAG_LENGTH:
        raise BadGallery("faces.etag must be a short string")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) \
            or not 0 < threshold <= 2:
        raise BadGallery("faces.threshold must be a number above 0 and at most 2")
    if not isinstance(people, list):
        raise BadGallery("faces.people must be a list")
    embeddings, names = {}, {}
    for person in people:
        pid, name, known = _person(person)
        embeddings[pid], names[pid] = known, name
    return Gallery(etag, float(threshold), embeddings, names, enabled)


def _person(person: object) -> tuple[int, str, list]:
    if not isinstance(person, dict):
        raise BadGallery("each of faces.people must be an object")
    pid, name, known = person.get("id"), person.get("name"), person.get("embeddings")
    if isinstance(pid, bool) or not isinstance(pid, int):
        raise BadGallery("a person's id must be an integer")
    if not isinstance(name, str) or not name:
        raise BadGallery(f"person {pid}: name must be a non-empty string")
    if not isinstance(known, list):
        raise BadGallery(f"person {pid}: embeddings must be a list")
    try:
        return pid, name, [embedding_from_json(e) for e in known]
    except ValueError as exc:
        raise BadGallery(f"person {pid}: {exc}") from None


class FaceReporter(ReportSender):
    """Sends queued sightings to the hub and keeps the camera's gallery up to date."""

    route = "faces"
    what = "face sighting"

    def __init__(self, camera: str, hub: HubAddress, queue: EventQueue, stop: threading.Event,
                 *, on_gallery: Callable[[Gallery], None],
                 on_supported: Callable[[bool], None] = lambda supported: None,
                 poll_seconds: float = GALLERY_POLL_SECONDS,
                 unsupported_poll_seconds: float = UNSUPPORTED_POLL_SECONDS,
                 backoff: Backoff | None = None, log: logging.Logger | None = None) -> None:
        super().__init__(camera, hub, queue, stop, poll_seconds=poll_seconds, backoff=backoff,
                         log=log or logger.getChild(camera), name="faces-uplink")
        self.on_gallery = on_gallery
        self.on_supported = on_supported
        self.unsupported_poll_seconds = unsupported_poll_seconds
        self.etag: str | None = None  # the gallery the edge holds (None: none yet)
        self.supported: bool | None = None  # None: not known yet
        self.polls = 0

    def report(self, sighting: Sighting) -> None:
        """Queue a report of ``sighting`` (called from the faces thread) and send it soon."""
        self.put(sighting.to_json())

    def _poll(self) -> None:
        headers = (("If-None-Match", f'"{self.etag}"'),) if self.etag is not None else ()
        status, answer = hub_request(self.hub, "GET", route_path(self.camera, "faces-gallery"),
                                     headers=headers, max_bytes=MAX_GALLERY_BYTES)
        self._outage.recovered()
        self.polls += 1
        wait = self.poll_seconds
        if status in (200, 304):
            self._set_supported(True)
            if status == 200:
                self._take_gallery(answer)
        elif camera_not_yet_known(status, answer):
            wait = min(wait, NOT_YET_KNOWN_POLL_SECONDS)
        elif status in (404, 405):
            self._set_supported(False)
            wait = self.unsupported_poll_seconds
        else:
            self.log.warning("hub refused the face gallery of %s (%d): %s", self.camera, status,
                             first_line(answer))
        self._next_poll = time.monotonic() + wait

    def _take_gallery(self, answer: bytes) -> None:
        try:
            gallery = gallery_from_json(json.loads(answer))
        except ValueError as exc:  # BadGallery, or not JSON (a cut answer too)
            self.log.warning("hub sent a face gallery the edge cannot use: %s", exc)
            return
        if gallery.etag != self.etag:
            self.log.info("face gallery %s: %d people, threshold %.2f, faces %s here",
                          gallery.etag or "(empty)", len(gallery.people), gallery.threshold,
                          "on" if gallery.enabled else "off")
        self.etag = gallery.etag
        self.on_gallery(gallery)

    def _take_answer(self, answer: bytes) -> None:
        """After a stored sighting: fetch the gallery now if the hub's is another one."""
        try:
            data = json.loads(answer)
        except ValueError:
            return
        etag = data.get("gallery") if isinstance(data, dict) else None
        if isinstance(etag, str) and etag != self.etag:
            self._next_poll = 0.0

    def _set_supported(self, supported: bool) -> None:
        if supported == self.supported:
            return
        if not supported:
            self.log.warning("hub %s has no face routes (an older hub): faces are paused, "
                             "asking again every %.0f s", self.hub.netloc,
                             self.unsupported_poll_seconds)
        elif self.supported is False:
            self.log.info("hub %s has face routes now: faces resume", self.hub.netloc)
        self.supported = supported
        self.on_supported(supported)
