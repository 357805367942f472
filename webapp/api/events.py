"""API endpoints for events (docs/api.md, "Events"): alerts and outages for every user;
alert settings, mutes and test emails for admins."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from typing import Any

from flask import jsonify, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from nvrlib.catalog.models import Alert

from ..alerting import service
from ..catalog_queries import iso_utc
from ..events import queries
from .. import faces_service, motion_service
from ..events.queries import AlertEvent, Event, FaceItem, MotionItem, OutageEvent, SpanEvent
from ..recordings.params import MAX_OFFSET, ParamError, int_param, page_size
from ..security import admin_required, api_error, current_user_is_admin, now
from . import bp

EVENT_PARAMS = frozenset({*queries.FILTER_PARAMS, "page", "limit"})
MAX_MUTE_HOURS = service.MAX_MUTE.total_seconds() / 3600


def _iso(value: dt.datetime | None) -> str | None:
    return iso_utc(value) if value is not None else None


def _check_known(args: Iterable[str], known: Iterable[str]) -> None:
    # A misspelt filter ("kind=" for "type=") must not silently widen the answer.
    unknown = sorted(set(args) - set(known))
    if unknown:
        raise ParamError(unknown[0], "unknown parameter")


def alert_json(event: AlertEvent, admin: bool) -> dict[str, Any]:
    """Return the API's JSON object of an alert (delivery internals for admins only)."""
    body: dict[str, Any] = {
        "type": "alert", "id": event.id, "time": iso_utc(event.at), "kind": event.kind,
        "camera": event.camera, "subject": event.subject, "body": event.body,
        "details": event.details, "status": event.status, "sent_at": _iso(event.sent_at),
    }
    if admin:
        body.update(attempts=event.attempts, last_error=event.last_error,
                    next_attempt_at=_iso(event.next_attempt_at),
                    recipients=[a for a in event.recipients.split(",") if a],
                    requested_by=event.requested_by)
    return body


def _duration(event: SpanEvent, current: dt.datetime) -> float | None:
    seconds = event.seconds(current)
    return None if seconds is None else round(seconds, 3)


def outage_json(event: OutageEvent, current: dt.datetime) -> dict[str, Any]:
    """Return the API's JSON object of an outage (``end`` null while it goes on)."""
    return {"type": "outage", "id": event.id, "time": iso_utc(event.start),
            "camera": event.camera, "start": iso_utc(event.start), "end": _iso(event.end),
            "ongoing": event.ongoing, "duration": _duration(event, current),
            "reason": event.reason, "reason_text": event.reason_text, "detail": event.detail,
            "backfilled_seconds": round(event.backfilled_seconds, 3),
            "dropped_seconds": round(event.dropped_seconds, 3)}


def motion_json(event: MotionItem, current: dt.datetime) -> dict[str, Any]:
    """Return the API's JSON object of a motion event (``end`` null while it goes on)."""
    x, y, w, h = event.box
    return {"type": "motion", "id": event.id, "time": iso_utc(event.start),
            "camera": event.camera, "start": iso_utc(event.start), "end": _iso(event.end),
            "ongoing": event.ongoing, "end_lost": event.end_lost,
            "duration": _duration(event, current),
            "score": round(event.score, 4), "box": {"x": x, "y": y, "w": w, "h": h},
            "source": event.origin,
            "snapshot": motion_service.snapshot_url(event.id) if event.has_snapshot else None,
            "play": motion_service.play_url(event.camera, event.start)}


def face_json(event: FaceItem) -> dict[str, Any]:
    """Return the API's JSON object of a face sighting (``person`` null: unknown)."""
    x, y, w, h = event.box
    return {"type": "face", "id": event.id, "time": iso_utc(event.start),
            "camera": event.camera, "start": iso_utc(event.start), "end": _iso(event.end),
            "ongoing": event.ongoing, "end_lost": event.end_lost, "person": event.person,
            "person_id": event.person_id,
            "distance": round(event.distance, 4) if event.distance is not None else None,
            "box": {"x": x, "y": y, "w": w, "h": h}, "size": event.size,
            "crop": faces_service.sighting_crop_url(event.id) if event.has_crop else None,
            "play": motion_service.play_url(event.camera, event.start)}


def event_json(event: Event, admin: bool, current: dt.datetime) -> dict[str, Any]:
    """Return the API's JSON object of an alert, an outage, a motion event or a sighting."""
    if isinstance(event, OutageEvent):
        return outage_json(event, current)
    if isinstance(event, MotionItem):
        return motion_json(event, current)
    if isinstance(event, FaceItem):
        return face_json(event)
    return alert_json(event, admin)


@bp.get("/events")
def list_events() -> ResponseReturnValue:
    """List alerts, outages, motion events and face sightings, newest first: a JSON list;
    ``Link: rel="next"`` when more follow."""
    _check_known(request.args, EVENT_PARAMS)
    limit = page_size(request.args)
    page_no = int_param(request.args, "page", 1, 1, MAX_OFFSET // limit + 1)
    filters = queries.parse_filters(request.args)
    page = queries.events(filters, limit, (page_no - 1) * limit)
    admin, current = current_user_is_admin(), now()
    response = jsonify([event_json(event, admin, current) for event in page.events])
    if page.has_next:
        args = {**request.args.to_dict(), "page": str(page_no + 1)}
        response.headers["Link"] = f'<{url_for("api.list_events", **args)}>; rel="next"'
    return response


def _settings_json() -> dict[str, Any]:
    email = service.email_status()
    return {
        "hub_running": email.hub_running, "heartbeat_at": _iso(email.heartbeat_at),
        "email_enabled": email.email_enabled, "recipients": list(email.recipients),
        "recipients_source": email.recipients_source,
        "web_addresses": service.saved_addresses(),
        "mutes": [{"camera": m.camera, "until": iso_utc(m.until)} for m in service.mutes()],
    }


@bp.get("/alerts/settings")
@admin_required
def alert_settings() -> ResponseReturnValue:
    """Tell whether email is on, to whom alerts go and from where, and the muted cameras."""
    return jsonify(_settings_json())


def _json_object() -> Mapping[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise service.AlertSettingsError("expected a JSON object (Content-Type: application/json)")
    return data


@bp.put("/alerts/addresses")
@admin_required
def set_alert_addresses() -> ResponseReturnValue:
    """Set the alert addresses: ``{"addresses": ["a@example.com", ...]}`` (empty: the config's)."""
    addresses = _json_object().get("addresses")
    if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
        raise service.AlertSettingsError("'addresses' must be a list of strings")
    service.save_addresses(addresses, current_user.username)
    return jsonify(_settings_json())


def _mute_length(data: Mapping[str, Any]) -> dt.timedelta | None:
    hours = data.get("hours")
    if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not math.isfinite(hours):
        raise service.AlertSettingsError("'hours' must be a number (0 unmutes)")
    if not 0 <= hours <= MAX_MUTE_HOURS:
        raise service.AlertSettingsError(f"'hours' must be between 0 and {MAX_MUTE_HOURS:.0f}")
    return dt.timedelta(hours=hours) if hours else None


@bp.post("/alerts/mute")
@admin_required
def mute_camera() -> ResponseReturnValue:
    """Mute a camera's alerts: ``{"camera": "porch", "hours": 8}``; ``"hours": 0`` unmutes."""
    data = _json_object()
    camera = data.get("camera")
    if not isinstance(camera, str) or not camera:
        raise service.AlertSettingsError("'camera' must be a camera's name")
    until = service.mute(camera, _mute_length(data), current_user.username)
    return jsonify({"camera": camera, "muted_until": _iso(until)})


def _test_json(alert: Alert) -> dict[str, Any]:
    return alert_json(queries.alert_event(alert), admin=True)


@bp.post("/alerts/test")
@admin_required
def send_test_email() -> ResponseReturnValue:
    """Queue a test email (202): the hub's sender delivers it; GET shows its status."""
    alert = service.request_test_email(current_user.username)
    response = jsonify(_test_json(alert))
    response.status_code = 202
    response.headers["Location"] = url_for("api.latest_test_email")
    return response


@bp.get("/alerts/test")
@admin_required
def latest_test_email() -> ResponseReturnValue:
    """Return the newest test email with its delivery status (404 if none was sent)."""
    alert = service.latest_test_alert()
    if alert is None:
        return api_error(404, "no test email was sent yet")
    return jsonify(_test_json(alert))
