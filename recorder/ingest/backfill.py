"""Admitting backfill uploads: spooled footage an edge sends after an outage (protocol.md, v2).

A backfill does not claim the camera's live slot: it runs next to the live stream, at most
one per camera, only for a camera the catalog already knows. The hub gives each one its own
segmenter (kind "backfill"); this module holds the rules that need no segmenter.
"""

from __future__ import annotations

import logging

from recorder.config import HubConfig
from recorder.errors import IngestRejected
from recorder.ingest.server import IngestRequest

logger = logging.getLogger(__name__)

_VERDICTS = {
    "unknown": (404, "unknown camera {name}: a backfill needs a camera that streamed live before"),
    "disabled": (423, "camera {name} is disabled"),
    "rejected": (403, "camera {name} was rejected by an admin"),
}


def precheck(config: HubConfig, request: IngestRequest, active: dict[str, object],
             streams: int, stopping: bool) -> None:
    """Refuse a backfill on what needs no database: state, conflicts, limits (token: the hub)."""
    name = request.camera
    if stopping:
        raise IngestRejected(503, "the hub is shutting down")
    camera = config.camera(name)
    if camera is not None and camera.is_pull:
        raise IngestRejected(409, f"camera {name} is pulled by the hub: nothing to backfill")
    if camera is not None and not camera.enabled:
        raise IngestRejected(423, f"camera {name} is disabled")
    if name in active:
        raise IngestRejected(409, f"camera {name} already has a backfill upload running")
    if streams >= config.max_streams:
        raise IngestRejected(503, "the hub is at its stream limit")


def check_hub(name: str, verdict: str) -> None:
    """Refuse (409) a camera that another hub of the shared catalog records (verdict 'hub:<id>')."""
    if verdict.startswith("hub:"):
        raise IngestRejected(409, f"camera {name} records on hub {verdict[4:]}, not this one: "
                                  "point its edge at that hub (docs/guide/several-hubs.md)")


def check_verdict(config: HubConfig, name: str, verdict: str) -> None:
    """Turn the catalog's verdict on a camera into a refusal, or accept it ('ok')."""
    check_hub(name, verdict)
    if verdict in _VERDICTS:
        status, text = _VERDICTS[verdict]
        raise IngestRejected(status, text.format(name=name))
    if verdict == "pending" and config.require_approval:
        raise IngestRejected(403, f"camera {name} is awaiting an admin's approval")


def describe(request: IngestRequest) -> str:
    """A short log label of a backfill request."""
    return f"backfill {request.protocol.backfill_id} from {request.peer}"
