"""Motion events to the hub, and the hub's motion settings back (protocol.md, "Motion events").

Each event is reported at its start and again at its end, as one small JSON POST on the ingest
port (the stream's token and TLS). Reports wait in an ``EventQueue`` beside the footage spool
(``<spool>/.motion/<camera>/``, bounded: the oldest is dropped with a log line) until the hub
answers 200, so events seen while the hub is away arrive when it is back. The queue and the
send loop are shared with face sightings (``reports.py``). The answer carries the camera's
motion settings; a poll of ``GET .../motion-settings`` every POLL_SECONDS brings an admin's
change in the web app to a running edge without a restart.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable

from .backoff import Backoff
from .motion import BadSettings, MotionEvent, MotionSettings, settings_from_json
from .reports import (  # EventQueue is re-exported: the motion tests and callers use it here
    EventQueue, ReportSender, camera_not_yet_known, first_line, hub_request, route_path,
)
from .uplink import HubAddress

logger = logging.getLogger(__name__)

POLL_SECONDS = 5.0
UNSUPPORTED_POLL_SECONDS = 60.0  # a hub without the motion routes (404 on the settings)


def motion_path(camera: str, route: str) -> str:
    """Return the target of a motion route of a camera (``events`` or ``motion-settings``)."""
    return route_path(camera, route)


def report_body(camera: str, event: MotionEvent) -> dict[str, object]:
    """The JSON body of one report, the snapshot in base64."""
    body = event.to_json(camera)
    if event.snapshot is not None:
        body["snapshot"] = base64.b64encode(event.snapshot).decode("ascii")
    return body


@dataclasses.dataclass
class SettingsChoice:
    """The flags' settings until an admin sets the camera's in the web app (updated_at)."""

    local: MotionSettings
    apply: Callable[[MotionSettings], None]
    current: MotionSettings | None = None

    def take(self, hub: MotionSettings) -> None:
        """Apply the hub's settings if an admin set them, else the flags' (once each change)."""
        chosen = hub if hub.updated_at is not None else self.local
        if chosen != self.current:
            self.current = chosen
            self.apply(chosen)


class MotionReporter(ReportSender):
    """Sends queued motion reports to the hub and polls the camera's motion settings."""

    route = "events"
    what = "motion event"

    def __init__(self, camera: str, hub: HubAddress, queue: EventQueue, stop: threading.Event,
                 settings: SettingsChoice, *, poll_seconds: float = POLL_SECONDS,
                 backoff: Backoff | None = None, log: logging.Logger | None = None) -> None:
        super().__init__(camera, hub, queue, stop, poll_seconds=poll_seconds, backoff=backoff,
                         log=log or logger.getChild(camera), name="motion-uplink")
        self.settings = settings

    def report(self, event: MotionEvent) -> None:
        """Queue a report of ``event`` (called from the motion thread) and send it soon."""
        self.put(report_body(self.camera, event))

    def _poll(self) -> None:
        status, answer = hub_request(self.hub, "GET", motion_path(self.camera, "motion-settings"))
        self._outage.recovered()
        if status == 200:
            self._take_answer(answer)
            self._next_poll = time.monotonic() + self.poll_seconds
            return
        # the camera is not in the catalog yet (its stream is being admitted): ask again soon;
        # any other refusal (a hub without motion events says 404 too) less often
        not_yet = camera_not_yet_known(status, answer)
        self.log.log(logging.DEBUG if status == 404 else logging.WARNING,
                     "hub has no motion settings for %s (%d): %s", self.camera, status,
                     first_line(answer))
        wait = self.poll_seconds if not_yet else UNSUPPORTED_POLL_SECONDS
        self._next_poll = time.monotonic() + wait

    def _take_answer(self, answer: bytes) -> None:
        try:
            data = json.loads(answer)
            hub = settings_from_json(data.get("motion") if isinstance(data, dict) else None)
        except (ValueError, BadSettings) as exc:
            self.log.warning("hub sent motion settings the edge cannot use: %s", exc)
            return
        self.settings.take(hub)
