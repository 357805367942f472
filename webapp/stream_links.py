"""Stream links: a playlist URL with a signed, expiring token, for players that cannot log in.

VLC, mpv, ffplay or a TV cannot send an ``Authorization`` header or a cookie, so the player
page and ``POST /api/v1/playback/<camera>/link`` hand out
``/api/v1/playback/<camera>.m3u8?start=..&end=..&st=<token>``. The token is an HMAC
(itsdangerous, keyed with the app's SECRET_KEY) over the user's id, the user's
``stream_link_epoch``, the camera, the range and an expiry (``STREAM_LINK_LIFETIME``, 12 h).
It opens that playlist, and the segments of that camera that overlap that range (the playlist
puts the same token on each segment URL), and nothing else. It stops working when it expires,
or when the user is deleted or disabled, signs out everywhere or gets a new password (each adds
one to ``stream_link_epoch``). The token is a secret: ``nvrlib.redact`` masks ``st=`` in logs.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from flask import current_app, g, request
from itsdangerous import BadData, URLSafeSerializer

from .extensions import db
from .models import User

logger = logging.getLogger(__name__)

PARAM = "st"  # also in nvrlib.redact.EXACT_SECRET_NAMES: never logged
SALT = "nvr.stream-link.v1"  # a token of another signed thing of the app is never a link
DEFAULT_LIFETIME = dt.timedelta(hours=12)  # app.config STREAM_LINK_LIFETIME overrides
# What a link opens: its playlist and the segments in it (both segment URLs).
ENDPOINTS = frozenset({"api.playlist", "api.recording_segment", "api.recording_file"})
UTC = dt.timezone.utc
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
MAX_NUMBER = 2**62  # a user id the database can look up (SQLite's INTEGER is 64-bit)


class LinkRejected(Exception):
    """A stream link that opens nothing: damaged, forged, expired or revoked (HTTP 401)."""


@dataclass(frozen=True)
class Grant:
    """What one valid stream link lets its holder play."""

    user_id: int
    epoch: int
    camera: str
    start: dt.datetime
    end: dt.datetime
    expires: dt.datetime


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def lifetime() -> dt.timedelta:
    """Return how long a new link plays (config STREAM_LINK_LIFETIME: a timedelta or seconds)."""
    value = current_app.config.get("STREAM_LINK_LIFETIME", DEFAULT_LIFETIME)
    return value if isinstance(value, dt.timedelta) else dt.timedelta(seconds=float(value))


def _ms(value: dt.datetime) -> int:
    return round(value.timestamp() * 1000)


def _from_ms(value: int) -> dt.datetime:
    return EPOCH + dt.timedelta(milliseconds=value)  # exact, unlike a float timestamp


def issue(user: User, camera: str, start: dt.datetime, end: dt.datetime,
          now: dt.datetime) -> tuple[str, Grant]:
    """Sign a link token for ``user`` to play ``camera`` in ``[start, end)``; return it and its
    grant (times to the millisecond, as the token holds them)."""
    payload = [user.id, user.stream_link_epoch or 0, camera, _ms(start), _ms(end),
               _ms(now + lifetime())]
    return _serializer().dumps(payload), _grant(payload)


def parse(token: str) -> Grant:
    """Check a token's signature and shape and return its grant, or raise LinkRejected."""
    try:
        payload: Any = _serializer().loads(token)
    except BadData:
        raise LinkRejected("this stream link is damaged or was not made by this server: "
                           "make a new one on the player page") from None
    try:
        return _grant(payload)
    except (TypeError, ValueError, OverflowError):
        # Only this server signs links, so this is an old format or a leaked SECRET_KEY.
        raise LinkRejected("this stream link is not in a form this server reads: "
                           "make a new one on the player page") from None


def _grant(payload: Any) -> Grant:
    user_id, epoch, camera, start, end, expires = payload
    numbers = (user_id, epoch, start, end, expires)
    if not isinstance(camera, str) or not all(type(n) is int and abs(n) < MAX_NUMBER
                                              for n in numbers):
        raise TypeError("a stream link holds numbers and a camera name")
    return Grant(user_id, epoch, camera, _from_ms(start), _from_ms(end), _from_ms(expires))


def check(grant: Grant, now: dt.datetime) -> User:
    """Return the user a grant acts for, or raise LinkRejected if it expired or was revoked."""
    if now >= grant.expires:
        raise LinkRejected(f"this stream link expired at {grant.expires:%Y-%m-%d %H:%M:%S} UTC: "
                           "make a new one on the player page")
    user = db.session.get(User, grant.user_id)
    if user is None or not user.active or (user.stream_link_epoch or 0) != grant.epoch:
        raise LinkRejected("this stream link was revoked (its account signed out everywhere, "
                           "changed its password, or was disabled or deleted)")
    return user


def user_of_request() -> User | None:
    """Return the user of a request's valid ``st=`` link, else None (noting why for the 401)."""
    token = request.args.get(PARAM)
    if token is None:
        return None
    if request.endpoint not in ENDPOINTS:
        g.stream_link_problem = "a stream link opens only its own playlist and segments"
        return None
    try:
        grant = parse(token)
        user = check(grant, current_app.config["CLOCK"]())
    except LinkRejected as exc:
        logger.info("refused a stream link from %s: %s", request.remote_addr, exc)
        g.stream_link_problem = str(exc)
        return None
    g.auth_method = "stream_link"
    g.stream_grant = grant
    return user


def current_grant() -> Grant | None:
    """Return the grant the request was authenticated with, or None (a login or API token)."""
    return g.get("stream_grant")


def current_token() -> str | None:
    """Return the request's link token when it authenticated the request (for segment URLs)."""
    return request.args.get(PARAM) if current_grant() is not None else None


def playlist_refusal(grant: Grant, camera: str, start: dt.datetime,
                     end: dt.datetime) -> str | None:
    """Say why a link may not open this playlist, or None when it may (same camera and range)."""
    if camera == grant.camera and start == grant.start and end == grant.end:
        return None
    return scope_text(grant)


def segment_refusal(grant: Grant, camera: str, start: dt.datetime,
                    end: dt.datetime) -> str | None:
    """Say why a link may not open a segment, or None when it may (its camera, overlapping)."""
    if camera == grant.camera and start < grant.end and end > grant.start:
        return None
    return scope_text(grant)


def scope_text(grant: Grant) -> str:
    """Say what a link plays (the message of a 403 for anything else)."""
    return (f"this stream link plays only {grant.camera} from "
            f"{grant.start:%Y-%m-%d %H:%M:%S} to {grant.end:%Y-%m-%d %H:%M:%S} UTC")
