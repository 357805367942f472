"""Cameras as the web app sees them: status from the hub, commands to it, pulled cameras.

The web app never talks to the hub directly. It reads the rows the hub writes into
``camera_status`` and writes ``commands`` rows, each for the hub that records the camera
(``commands.hub_id``), that the hubs poll every second: the control
channel through the catalog database (docs/design/control.md). Used by the live view, the
admin panel and the JSON API alike, so all three apply the same rules.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import delete, func, select

from nvrlib import camera_urls
from nvrlib.catalog.models import Camera, CameraStatus, Command, Outage, RecordingLock, Run, Segment
from nvrlib.names import DEFAULT_HUB, InvalidName, validate_camera_name
from nvrlib.redact import MaskLeft, redact, redact_for_edit, unmask
from recorder.control import ACTIONS as HUB_ACTIONS

from . import faces_settings, hub_storage, hubs
from .extensions import db
from .security import now
from .service_errors import ServiceError

logger = logging.getLogger(__name__)

# The hub rewrites the status of a live camera every 3 s; a row older than this that still
# claims the camera is live means the hub stopped reporting (crashed, hung, or not running).
STALE_AFTER = dt.timedelta(seconds=10)
DEFAULT_RESULT_TIMEOUT = 3.0  # config CAMERA_COMMAND_TIMEOUT: how long a request waits
RESULT_POLL_SECONDS = 0.1  # the hub looks for commands every 1 s
UNKNOWN = "unknown"  # the state of a camera the hub says nothing (current) about
STOPPED = "stopped"
MAX_URL_LENGTH = 1024  # cameras.url
MAX_LOCATION_LENGTH = 128  # cameras.location
PULL_SCHEMES = ("rtsp", "rtsps")

# What an admin may ask for a camera, and the hub action each one sends.
CONTROL_ACTIONS: dict[str, str] = {
    "restart": "restart", "disconnect": "disconnect", "enable": "enable", "disable": "disable",
    "approve": "enable", "reject": "disable",
}


class CameraError(ServiceError):
    """A camera request the web app refuses; ``status`` is the HTTP status that says why."""


class InvalidRequest(CameraError):
    """Bad input, or an action that does not apply to this camera (400)."""


class UnknownCamera(CameraError):
    """No camera of that name (404)."""

    status = 404


class UnknownCommand(CameraError):
    """No command of that id (404)."""

    status = 404


class NameTaken(CameraError):
    """A camera of that name exists already (409)."""

    status = 409


@dataclasses.dataclass(frozen=True)
class CameraView:
    """One camera with the hub's latest status, ready for a page or the API."""

    name: str
    location: str
    kind: str
    enabled: bool
    approval: str
    state: str
    online: bool
    stale: bool  # the hub stopped reporting on a camera it last said was live
    connected_since: dt.datetime | None
    offline_since: dt.datetime | None
    uptime: dt.timedelta | None
    fps: float
    bitrate_bps: float
    restarts: int
    last_segment_end: dt.datetime | None
    peer: str  # the edge's address, or a pulled camera's URL without its credentials
    source: str  # a camera added here: its URL without its credentials
    last_error: str
    editable: bool  # a pull camera added in the web app (config-file cameras stay in the file)
    hub: str = DEFAULT_HUB  # the hub that records it (cameras.hub_id)
    faces_enabled: bool = True  # an admin's switch (cameras.faces_enabled)
    faces_seen_at: dt.datetime | None = None  # its edge's last faces request

    @property
    def faces_active(self) -> bool:
        """Tell whether face recognition runs at this camera now (its "faces" badge)."""
        return faces_settings.CameraFaces(self.name, self.faces_enabled, False,
                                          self.faces_seen_at).active(now())

    def to_json(self, admin: bool = False) -> dict[str, Any]:
        """Return the API's JSON object; the edge address and errors only for admins."""
        data: dict[str, Any] = {
            "name": self.name, "location": self.location, "kind": self.kind,
            "enabled": self.enabled, "approval": self.approval, "state": self.state,
            "online": self.online, "stale": self.stale,
            "connected_since": _iso(self.connected_since),
            "offline_since": _iso(self.offline_since),
            "uptime": self.uptime.total_seconds() if self.uptime is not None else None,
            "fps": self.fps, "bitrate": self.bitrate_bps, "restarts": self.restarts,
            "last_segment_end": _iso(self.last_segment_end), "hub": self.hub,
            "faces": faces_settings.badge_state(self.faces_enabled, self.faces_seen_at),
        }
        if admin:
            data.update(peer=self.peer, source=self.source, last_error=self.last_error,
                        editable=self.editable)
        return data


@dataclasses.dataclass(frozen=True)
class Outcome:
    """A command sent to the hub, and its answer if it came in time (else ``result`` is None)."""

    command_id: int
    camera: str
    action: str
    result: str | None

    @property
    def ok(self) -> bool | None:
        """Tell whether the hub reported success (None while it has not answered)."""
        return None if self.result is None else self.result.startswith("ok")

    def to_json(self) -> dict[str, Any]:
        """Return the API's JSON object for this command."""
        return {"command": self.command_id, "camera": self.camera, "action": self.action,
                "done": self.result is not None, "ok": self.ok, "result": self.result}


# -- reading -----------------------------------------------------------------------------------

def display_url(url: str) -> str:
    """Return a URL fit to show: user and password, and secret query parameters, hidden."""
    return redact(url)


def list_cameras() -> list[CameraView]:
    """Return every camera of the catalog with its status, by name."""
    return [_view(*row) for row in db.session.execute(_cameras_query().order_by(Camera.name))]


def get_camera(name: str) -> CameraView:
    """Return one camera with its status, or raise UnknownCamera."""
    row = db.session.execute(_cameras_query().where(Camera.name == name)).first()
    if row is None:
        raise UnknownCamera(f"no camera named {name!r}")
    return _view(*row)


def camera_hub(name: str) -> str | None:
    """Return the id of the hub that records camera ``name``; None: no such camera (one probe)."""
    return db.session.scalar(select(Camera.hub_id).where(Camera.name == name))


def _cameras_query():  # type: ignore[no-untyped-def]
    # One probe of ix_segments_camera_start per camera, however much footage there is.
    newest_end = (select(Segment.end_time)
                  .where(Segment.camera_id == Camera.id, Segment.status == "ok")
                  .order_by(Segment.start_time.desc()).limit(1)
                  .correlate(Camera).scalar_subquery())
    return (select(Camera, CameraStatus, newest_end)
            .outerjoin(CameraStatus, CameraStatus.camera_id == Camera.id))


def _view(camera: Camera, status: CameraStatus | None,
          newest_end: dt.datetime | None) -> CameraView:
    current = now()
    live = _live_fields(status, current)
    peer = status.peer if status is not None and status.peer else (camera.url or "")
    return CameraView(
        name=camera.name, location=camera.location or "", kind=camera.kind,
        enabled=camera.enabled, approval=camera.approval, **live,
        last_segment_end=_latest(status.last_segment_end if status else None, newest_end),
        peer=display_url(peer), source=display_url(camera.url) if camera.url else "",
        last_error=redact(status.last_error) if status else "",
        editable=camera.kind == "pull" and camera.url is not None,
        hub=camera.hub_id or DEFAULT_HUB, faces_enabled=camera.faces_enabled,
        faces_seen_at=camera.faces_seen_at)


def _live_fields(status: CameraStatus | None, current: dt.datetime) -> dict[str, Any]:
    """The status fields, with a silent hub's last word turned into 'offline, state unknown'."""
    if status is None:  # the hub never ran this camera (a pull camera just added, say)
        return dict(state=UNKNOWN, online=False, stale=False, connected_since=None,
                    offline_since=None, uptime=None, fps=0.0, bitrate_bps=0.0, restarts=0)
    # The hub rewrites only live rows every 3 s; a stopped row stays as it is until it changes.
    stale = (current - status.updated_at > STALE_AFTER
             and (status.online or status.state != STOPPED))
    if stale:
        return dict(state=UNKNOWN, online=False, stale=True, connected_since=None,
                    offline_since=status.offline_since or status.updated_at, uptime=None,
                    fps=0.0, bitrate_bps=0.0, restarts=status.restarts)
    connected = status.connected_since if status.online else None
    return dict(state=status.state, online=status.online, stale=False, connected_since=connected,
                offline_since=None if status.online else status.offline_since,
                uptime=max(current - connected, dt.timedelta(0)) if connected else None,
                fps=status.fps, bitrate_bps=status.bitrate_bps, restarts=status.restarts)


def _latest(*times: dt.datetime | None) -> dt.datetime | None:
    known = [t for t in times if t is not None]
    return max(known) if known else None


def _iso(value: dt.datetime | None) -> str | None:
    # As every answer of the API (docs/api.md, "Times"): UTC, milliseconds, a Z.
    if value is None:
        return None
    return value.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def _camera_row(name: str) -> Camera:
    """Fetch a camera's row by name, or raise UnknownCamera."""
    camera = db.session.scalar(select(Camera).where(Camera.name == name))
    if camera is None:
        raise UnknownCamera(f"no camera named {name!r}")
    return camera


# -- the control channel -----------------------------------------------------------------------

def send_command(camera: str, action: str, user: str, hub_id: str = DEFAULT_HUB) -> int:
    """Queue a command for hub ``hub_id`` and return its id (it runs it within about a second)."""
    if action not in HUB_ACTIONS:
        raise InvalidRequest(f"unknown hub action {action!r}")
    # created_at keeps its default, the real time: the hub compares it with its own clock.
    command = Command(camera=camera, action=action, requested_by=user[:64], result="",
                      hub_id=hub_id)
    db.session.add(command)
    db.session.commit()
    hub_storage.nudge_hubs(hub_id)
    logger.info("%s asked hub %s to %s %s (command %d)", user, hub_id, action, camera,
                command.id)
    return command.id


def command_result(command_id: int) -> str | None:
    """Return the hub's answer to a command, or None while it is pending (or unknown)."""
    # A connection of its own: a read in a fresh transaction sees the hub's latest commit.
    with db.engine.connect() as connection:
        row = connection.execute(select(Command.done_at, Command.result)
                                 .where(Command.id == command_id)).first()
    return row.result if row is not None and row.done_at is not None else None


def get_command(command_id: int) -> Outcome:
    """Return a command sent earlier with the hub's answer so far, or raise UnknownCommand."""
    with db.engine.connect() as connection:
        row = connection.execute(select(Command.camera, Command.action, Command.done_at,
                                        Command.result).where(Command.id == command_id)).first()
    if row is None:
        raise UnknownCommand(f"no command {command_id}")
    return Outcome(command_id, row.camera, row.action,
                   row.result if row.done_at is not None else None)


def result_timeout() -> float:
    """Return how long a request waits for the hub's answer (config CAMERA_COMMAND_TIMEOUT)."""
    return float(current_app.config.get("CAMERA_COMMAND_TIMEOUT", DEFAULT_RESULT_TIMEOUT))


def wait_for_result(command_id: int, timeout: float | None = None) -> str | None:
    """Poll for a command's answer until ``timeout`` seconds pass; None if it did not come."""
    deadline = time.monotonic() + (result_timeout() if timeout is None else timeout)
    while True:
        result = command_result(command_id)
        remaining = deadline - time.monotonic()
        if result is not None or remaining <= 0:
            return result
        time.sleep(min(RESULT_POLL_SECONDS, remaining))


def _send_and_wait(camera: Camera, action: str, user: str, timeout: float | None) -> Outcome:
    """Send ``action`` to the hub that records ``camera`` and wait briefly for its answer."""
    name = camera.name
    command_id = send_command(name, action, user, camera.hub_id or DEFAULT_HUB)
    return Outcome(command_id, name, action, wait_for_result(command_id, timeout))


# -- control actions ---------------------------------------------------------------------------

def check_action_name(action: str) -> None:
    """Raise InvalidRequest unless ``action`` is one an admin may ask for."""
    if action not in CONTROL_ACTIONS:
        raise InvalidRequest(f"unknown action {action!r}; expected one of "
                             f"{', '.join(CONTROL_ACTIONS)}")


def check_action(camera: Camera, action: str) -> None:
    """Raise InvalidRequest unless ``action`` applies to this camera in its current state."""
    check_action_name(action)
    name = camera.name
    if action == "disconnect" and camera.kind != "push":
        raise InvalidRequest(f"camera {name} is pulled by the hub: there is no edge to disconnect")
    if action == "restart" and (not camera.enabled or camera.approval == "rejected"):
        raise InvalidRequest(f"camera {name} is disabled; enable it first")
    if action == "enable" and camera.approval == "rejected":
        raise InvalidRequest(f"camera {name} was rejected; approve it first")
    if action == "approve" and camera.approval == "approved":
        raise InvalidRequest(f"camera {name} is approved already")
    if action == "reject" and camera.approval != "pending":
        raise InvalidRequest(f"only a camera awaiting approval can be rejected; "
                             f"{name} is {camera.approval}")


def control(name: str, action: str, user: str, timeout: float | None = None) -> Outcome:
    """Carry out an admin's action on a camera: update its row, tell the hub, wait briefly."""
    check_action_name(action)  # before the look-up: a bad action is bad for any camera
    camera = _camera_row(name)
    check_action(camera, action)
    if action in ("enable", "disable"):
        camera.enabled = action == "enable"
    elif action == "approve":
        camera.approval, camera.enabled = "approved", True
    elif action == "reject":
        camera.approval, camera.enabled = "rejected", False
    db.session.commit()
    outcome = _send_and_wait(camera, CONTROL_ACTIONS[action], user, timeout)
    return dataclasses.replace(outcome, action=action)  # "approve", not the "enable" it sent


# -- pulled cameras ----------------------------------------------------------------------------

def check_name(name: str) -> str:
    """Return a valid camera name, or raise InvalidRequest saying what is wrong."""
    try:
        return validate_camera_name(name)
    except InvalidName as exc:
        raise InvalidRequest(str(exc)) from None


def check_location(location: str) -> str:
    """Return a location fit to store (trimmed, bounded, printable), or raise InvalidRequest."""
    location = (location or "").strip()
    if len(location) > MAX_LOCATION_LENGTH:
        raise InvalidRequest(f"location is longer than {MAX_LOCATION_LENGTH} characters")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in location):
        raise InvalidRequest("location must not contain control characters")
    return location


def check_pull_url(url: str) -> str:
    """Return an RTSP URL the hub can pull, or raise InvalidRequest saying what is wrong."""
    url = (url or "").strip()
    if not url:
        raise InvalidRequest("the camera's URL is missing")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidRequest(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in url):
        raise InvalidRequest("the URL must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError:
        raise InvalidRequest("the URL is malformed (check the host and the port)") from None
    if parts.scheme.lower() not in PULL_SCHEMES:
        raise InvalidRequest("only rtsp:// and rtsps:// cameras can be pulled")
    if not parts.hostname:
        raise InvalidRequest("the URL has no host (rtsp://HOST[:PORT]/PATH)")
    try:
        camera_urls.check_camera_url(url, current_app.config["ALLOW_LOCAL_CAMERA_URLS"])
    except camera_urls.LocalCameraURL as exc:
        raise InvalidRequest(str(exc)) from None
    return url


def check_hub(hub: str | None) -> str:
    """Return the hub a new camera goes to (none named: the only one), or raise InvalidRequest."""
    try:
        return hubs.choose_hub(hub)
    except hubs.UnknownHub as exc:
        raise InvalidRequest(str(exc)) from None


def add_pull_camera(name: str, location: str, url: str, user: str,
                    timeout: float | None = None, hub: str | None = None) -> Outcome:
    """Add an RTSP camera for hub ``hub`` to pull (none named: the only hub), then reload it."""
    name, location, url = check_name(name), check_location(location), check_pull_url(url)
    hub_id = check_hub(hub)
    camera = db.session.scalar(select(Camera).where(Camera.name == name))
    if camera is not None and not _removed_pull_camera(camera):
        raise NameTaken(f"a camera named {name} exists already")
    if camera is None:
        camera = Camera(name=name, kind="pull")
        db.session.add(camera)
    camera.location, camera.url, camera.enabled, camera.approval = location, url, True, "approved"
    camera.hub_id = hub_id  # a removed camera added again may go to another hub; its footage stays
    db.session.commit()
    logger.info("%s added pull camera %s on hub %s (%s)", user, name, hub_id, display_url(url))
    return _send_and_wait(camera, "reload", user, timeout)


def _removed_pull_camera(camera: Camera) -> bool:
    # A pull camera removed while it had footage keeps its row (see remove_pull_camera).
    return camera.kind == "pull" and camera.url is None and not camera.enabled


def _editable_row(name: str) -> Camera:
    camera = _camera_row(name)
    if camera.kind != "pull" or camera.url is None:
        raise InvalidRequest(f"camera {name} was not added here as a pull camera; "
                             f"change it in the hub's config file or on its edge")
    return camera


def url_for_edit(name: str) -> str:
    """Return a pull camera's URL for the edit form: user shown, password and secrets as ***."""
    return redact_for_edit(_editable_row(name).url or "")


def _merged_url(edited: str, stored: str | None) -> str:
    """The edited URL with the stored secrets back where it still shows *** (form unchanged)."""
    try:
        return unmask(edited.strip(), stored)
    except MaskLeft as exc:
        raise InvalidRequest(str(exc)) from None


def edit_pull_camera(name: str, location: str | None, url: str | None, user: str,
                     timeout: float | None = None) -> Outcome:
    """Change a pull camera's location and/or URL (None or blank keeps it), then reload.

    A URL that still shows *** for its password (or a secret parameter), as the edit form
    fills it in, keeps the stored one there.
    """
    camera = _editable_row(name)
    if location is not None:
        camera.location = check_location(location)
    if url is not None and url.strip():
        camera.url = check_pull_url(_merged_url(url, camera.url))
    db.session.commit()
    logger.info("%s edited pull camera %s", user, name)
    return _send_and_wait(camera, "reload", user, timeout)


def remove_pull_camera(name: str, user: str, timeout: float | None = None) -> Outcome:
    """Stop pulling a camera and forget its URL; its row goes too if it has no footage."""
    camera = _editable_row(name)
    # First take it out of what the hub pulls; delete rows only once the hub has let go,
    # or a segment it was finishing would be cataloged for a camera that no longer exists.
    camera.url, camera.enabled = None, False
    db.session.commit()
    outcome = _send_and_wait(camera, "reload", user, timeout)
    if outcome.result is not None and not _has_footage(camera.id):
        # with no footage, its outages explain nothing and its locks protect nothing
        for table in (CameraStatus, Run, Outage, RecordingLock):
            db.session.execute(delete(table).where(table.camera_id == camera.id))
        db.session.delete(camera)
        db.session.commit()
    logger.info("%s removed pull camera %s", user, name)
    return outcome


def _has_footage(camera_id: int) -> bool:
    count = db.session.scalar(select(func.count()).select_from(Segment)
                              .where(Segment.camera_id == camera_id))
    return bool(count)


# -- formatting for pages ----------------------------------------------------------------------

def human_bitrate(bps: float) -> str:
    """Format a bit rate for people: '2.4 Mbit/s', '640 kbit/s'."""
    if bps >= 1e6:
        return f"{bps / 1e6:.1f} Mbit/s"
    if bps >= 1e3:
        return f"{bps / 1e3:.0f} kbit/s"
    return f"{bps:.0f} bit/s"


def human_duration(delta: dt.timedelta | None) -> str:
    """Format an uptime for people: '3 d 4 h', '2 h 05 min', '7 min 30 s', '12 s'."""
    if delta is None:
        return "–"
    days, rest = divmod(int(delta.total_seconds()), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {seconds:02d} s"
    return f"{seconds} s"
