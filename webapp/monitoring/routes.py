"""Views of the monitoring blueprint: the health probe and the Prometheus metrics."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from flask import current_app, jsonify, request
from flask_login import current_user
from flask.typing import ResponseReturnValue
from prometheus_client.exposition import choose_encoder
from sqlalchemy.exc import SQLAlchemyError

from ..catalog_queries import iso_utc
from ..extensions import db
from ..security import now
from . import bp
from .metrics import registry_for
from .status import CameraView, HubView, read_cameras, read_hub

logger = logging.getLogger(__name__)

OK, DEGRADED, DOWN = "ok", "degraded", "down"


def _camera_counts(cameras: list[CameraView]) -> dict[str, int]:
    """Count the cameras; offline ones are those the hub should record but does not."""
    failed = sum(1 for camera in cameras if camera.failed)
    offline = sum(1 for camera in cameras
                  if camera.expected and not camera.online and not camera.failed)
    return {"total": len(cameras), "online": sum(1 for camera in cameras if camera.online),
            "offline": offline, "failed": failed}


def _disk(hub: HubView) -> dict[str, Any]:
    percent = hub.free_percent
    if percent is None:  # the hub has not measured the disk yet
        return {"total_bytes": None, "free_bytes": None, "free_percent": None, "low": False}
    return {"total_bytes": hub.disk_total, "free_bytes": hub.disk_free,
            "free_percent": round(percent, 2),
            "low": percent < float(current_app.config["DISK_LOW_PERCENT"])}


def _not_recording(hub: HubView, cameras: list[CameraView]) -> list[str]:
    """The cameras the running hub says receive data but write nothing (names in the catalog)."""
    known = {camera.name for camera in cameras}
    return [name for name in hub.not_recording if name in known] if hub.running else []


def health_report(current: dt.datetime) -> dict[str, Any]:
    """Read the catalog and judge the system: ok, degraded or down (raises if it cannot)."""
    hub = read_hub(current)
    views = read_cameras(current)
    cameras = _camera_counts(views)
    not_recording = _not_recording(hub, views)
    cameras["not_recording"] = len(not_recording)
    disk = _disk(hub)
    if not hub.running:
        status = DOWN
    elif (cameras["offline"] or cameras["failed"] or not_recording or disk["low"]
          or not all(hub.checks.values())):
        status = DEGRADED
    else:
        status = OK
    age = round(hub.heartbeat_age, 1) if hub.heartbeat_age is not None else None
    report = {"status": status, "time": iso_utc(current), "database": "ok",
              "hub": {"running": hub.running, "heartbeat_age_seconds": age},
              "cameras": cameras, "disk": disk,
              "checks": {name: {"ok": ok} for name, ok in sorted(hub.checks.items())}}
    if not_recording and current_user.is_authenticated:
        report["not_recording"] = not_recording  # names only for a logged-in user or a token
    return report


def _http_status(report: dict[str, Any]) -> int:
    # a camera that receives but records nothing fails the probe like a dead hub: the
    # footage is being lost now, and everything else about it looks fine
    down = report["status"] == DOWN or (report["cameras"] or {}).get("not_recording")
    return 503 if down else 200


def _catalog_failed(exc: SQLAlchemyError, what: str) -> None:
    logger.warning("%s: cannot read the catalog: %s", what, exc.__class__.__name__)
    try:
        db.session.rollback()
    except SQLAlchemyError:
        pass  # the connection is gone; the session is discarded at the end of the request


@bp.get("/api/v1/health")
def health() -> ResponseReturnValue:
    """Tell a load balancer whether the NVR works: 200, or 503 if down or a camera records nothing."""
    current = now()
    try:
        report = health_report(current)
    except SQLAlchemyError as exc:
        _catalog_failed(exc, "health")
        report = {"status": DOWN, "time": iso_utc(current), "database": "error",
                  "hub": {"running": False, "heartbeat_age_seconds": None},
                  "cameras": None, "disk": None, "checks": {}}
    return jsonify(report), _http_status(report)


@bp.get("/metrics")
def metrics() -> ResponseReturnValue:
    """Expose the catalog's numbers to Prometheus (text format, or OpenMetrics if asked)."""
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    try:
        body = encoder(registry_for(now()))
    except SQLAlchemyError as exc:
        _catalog_failed(exc, "metrics")
        return current_app.response_class("the catalog database is unreachable\n", status=503,
                                          mimetype="text/plain")
    return current_app.response_class(body, content_type=content_type)
