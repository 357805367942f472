"""Views of the monitoring blueprint: the health probe and the Prometheus metrics."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from flask import current_app, jsonify, render_template, request
from flask_login import current_user
from flask.typing import ResponseReturnValue
from prometheus_client.exposition import choose_encoder
from sqlalchemy.exc import SQLAlchemyError

from ..catalog_queries import iso_utc
from ..extensions import db
from ..security import now
from . import bp
from .metrics import registry_for
from .status import CameraView, HubView, read_cameras, read_hubs

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


def _not_recording(hubs: list[HubView], cameras: list[CameraView]) -> list[str]:
    """The cameras the running hubs say receive data but write nothing (names in the catalog)."""
    known = {camera.name for camera in cameras}
    said = {name for hub in hubs if hub.running for name in hub.not_recording}
    return sorted(said & known)


def _fullest(hubs: list[HubView]) -> HubView:
    """The hub whose disk has the least free share (the one to warn about), or the first."""
    measured = [hub for hub in hubs if hub.free_percent is not None]
    return min(measured, key=lambda hub: hub.free_percent or 0.0) if measured else hubs[0]


def _checks(hubs: list[HubView]) -> dict[str, bool]:
    """Each check's verdict over every hub that ran it: ok only where all passed."""
    verdicts: dict[str, bool] = {}
    for hub in hubs:
        for name, ok in hub.checks.items():
            verdicts[name] = verdicts.get(name, True) and ok
    return dict(sorted(verdicts.items()))


def _age(seconds: float | None) -> float | None:
    return round(seconds, 1) if seconds is not None else None


def _hub_summary(hubs: list[HubView]) -> dict[str, Any]:
    """The public word on the hubs: all running, the oldest heartbeat (counts with several)."""
    ages = [hub.heartbeat_age for hub in hubs]
    oldest = None if None in ages else max(age for age in ages if age is not None)
    summary: dict[str, Any] = {"running": all(hub.running for hub in hubs),
                               "heartbeat_age_seconds": _age(oldest)}
    if len(hubs) > 1:
        summary.update(total=len(hubs), silent=sum(1 for hub in hubs if not hub.running))
    return summary


def silent_since(hub: HubView) -> str:
    """Say that a hub stopped beating, and since when."""
    if hub.heartbeat_at is None:
        return f"hub {hub.hub_id} silent: it never sent a heartbeat"
    return f"hub {hub.hub_id} silent since {iso_utc(hub.heartbeat_at)}"


def hub_json(hub: HubView) -> dict[str, Any]:
    """Return one hub's details for a logged-in user (ids, addresses: not for the public)."""
    return {"id": hub.hub_id, "running": hub.running,
            "heartbeat_at": iso_utc(hub.heartbeat_at) if hub.heartbeat_at else None,
            "heartbeat_age_seconds": _age(hub.heartbeat_age),
            "disk_free_bytes": hub.disk_free if hub.disk_total > 0 else None,
            "disk_total_bytes": hub.disk_total if hub.disk_total > 0 else None,
            "footage_bytes": hub.footage_bytes, "listen": hub.listen,
            "storage_reachable": hub.storage_reachable}


def health_report(current: dt.datetime, hubs: list[HubView] | None = None) -> dict[str, Any]:
    """Read the catalog and judge the system: ok, degraded or down (raises if it cannot).

    Down when no hub beats; degraded when one of several hubs is silent ("hub X silent since
    ..."), a camera is offline, a disk low or a check failing. ``hubs``: read already.
    """
    if hubs is None:
        # where each hub's storage is matters to logged-in readers only: no marker read for a probe
        hubs = read_hubs(current, storage=current_user.is_authenticated)
    views = read_cameras(current)
    cameras = _camera_counts(views)
    not_recording = _not_recording(hubs, views)
    cameras["not_recording"] = len(not_recording)
    disk = _disk(_fullest(hubs))
    checks = _checks(hubs)
    silent = [silent_since(hub) for hub in hubs if not hub.running]
    if not any(hub.running for hub in hubs):
        status = DOWN
    elif (silent or cameras["offline"] or cameras["failed"] or not_recording or disk["low"]
          or not all(checks.values())):
        status = DEGRADED
    else:
        status = OK
    report = {"status": status, "time": iso_utc(current), "database": "ok",
              "hub": _hub_summary(hubs), "cameras": cameras, "disk": disk,
              "checks": {name: {"ok": ok} for name, ok in checks.items()}}
    if current_user.is_authenticated:  # names only for a logged-in user or a token
        if not_recording:
            report["not_recording"] = not_recording
        report["hubs"] = [hub_json(hub) for hub in hubs]
        if silent:
            report["problems"] = silent
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


@bp.get("/health")
def index() -> ResponseReturnValue:
    """Show the health of the system for people: its verdict, each hub, the cameras, the disks."""
    current = now()
    hubs = read_hubs(current, storage=True)
    return render_template("monitoring/index.html", report=health_report(current, hubs),
                           hubs=hubs)


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
