"""Alert settings through the catalog: the hub reads what the web app writes, and vice versa.

The web app never emails anything itself. It stores the alert addresses in the ``settings``
row ``alerts.email_to``, a camera's mute in ``cameras.alerts_muted_until``, and a test email as
a ``pending`` row of ``alerts`` that the hub's sender delivers like any other alert. The hub
publishes whether email is on, and to whom it goes, in its ``hub_status`` row with each
heartbeat; with several hubs (which share the config in practice) the page shows what the most
recently beating one said. Used by the settings page and the JSON API alike.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select

from nvrlib.catalog.models import Alert, Camera, HubStatus, Setting
from recorder.config import valid_email

from ..extensions import db
from ..security import now
from ..service_errors import ServiceError

logger = logging.getLogger(__name__)

EMAIL_TO_KEY = "alerts.email_to"
# The hub beats every few seconds; a heartbeat older than this means it is not running.
HUB_STALE_AFTER = dt.timedelta(seconds=30)
MAX_ADDRESSES = 50
MAX_SETTING_LENGTH = 4000
TEST_KIND = "test"
TEST_SUBJECT = "[NVR] Test email"
# The mutes an admin picks from: (key, label, length).
MUTE_CHOICES: tuple[tuple[str, str, dt.timedelta], ...] = (
    ("1h", "1 hour", dt.timedelta(hours=1)),
    ("8h", "8 hours", dt.timedelta(hours=8)),
    ("24h", "24 hours", dt.timedelta(hours=24)),
    ("7d", "7 days", dt.timedelta(days=7)),
)
MUTE_LENGTHS = {key: length for key, _, length in MUTE_CHOICES}
MAX_MUTE = dt.timedelta(days=30)
# Where the hub's recipients came from (HubStatus.recipients_source), in words.
SOURCES = {
    "environment": "the hub's environment (ALERT_EMAIL_TO), which overrides the addresses set here",
    "web": "the addresses set on this page",
    "config": "the hub's config file ([alerts] email_to)",
    "none": "nowhere: no address is set",
}
_SEPARATORS = re.compile(r"[,;\s]+")


class AlertSettingsError(ServiceError, ValueError):
    """A settings change the web app refuses; the message says why."""


class UnknownCamera(AlertSettingsError):
    """No camera of that name is in the catalog."""

    status = 404


@dataclass(frozen=True)
class EmailStatus:
    """What the hub last said about email, and whether it is running to say it."""

    hub_running: bool
    heartbeat_at: dt.datetime | None
    email_enabled: bool
    recipients_source: str
    recipients: tuple[str, ...]

    @property
    def source_text(self) -> str:
        """Return where the recipients came from, in words."""
        return SOURCES.get(self.recipients_source, self.recipients_source)

    @property
    def environment_overrides(self) -> bool:
        """Tell whether ALERT_EMAIL_TO in the hub's environment wins over the web setting."""
        return self.recipients_source == "environment"


@dataclass(frozen=True)
class Mute:
    """A camera whose alerts are muted until a time."""

    camera: str
    until: dt.datetime


def parse_addresses(text: str) -> list[str]:
    """Split a list of addresses (commas, semicolons or spaces between) and check each one."""
    addresses = list(dict.fromkeys(part for part in _SEPARATORS.split(text or "") if part))
    for address in addresses:
        if not valid_email(address):
            raise AlertSettingsError(f"{address!r} is not an email address")
    if len(addresses) > MAX_ADDRESSES:
        raise AlertSettingsError(f"at most {MAX_ADDRESSES} addresses")
    return addresses


def email_status() -> EmailStatus:
    """Return the email state the latest-beating hub published, and whether it beats still."""
    row = db.session.scalars(select(HubStatus)
                             .order_by(HubStatus.heartbeat_at.desc().nulls_last(), HubStatus.id)
                             .limit(1)).first()
    if row is None:
        return EmailStatus(False, None, False, "none", ())
    beat = row.heartbeat_at
    running = beat is not None and now() - beat <= HUB_STALE_AFTER
    recipients = tuple(a.strip() for a in (row.recipients or "").split(",") if a.strip())
    return EmailStatus(running, beat, bool(row.email_enabled), row.recipients_source or "none",
                       recipients)


def saved_addresses() -> list[str]:
    """Return the alert addresses set in the web app (empty: the hub uses its config)."""
    row = db.session.get(Setting, EMAIL_TO_KEY)
    if row is None:
        return []
    return [part.strip() for part in row.value.split(",") if part.strip()]


def save_addresses(addresses: Iterable[str], user: str) -> list[str]:
    """Store the alert addresses (none: remove the setting, so the config file's apply)."""
    checked = parse_addresses(",".join(addresses))
    value = ",".join(checked)
    if len(value) > MAX_SETTING_LENGTH:
        raise AlertSettingsError("the list of addresses is too long")
    row = db.session.get(Setting, EMAIL_TO_KEY)
    if not checked:
        if row is not None:
            db.session.delete(row)
    elif row is None:
        db.session.add(Setting(key=EMAIL_TO_KEY, value=value, updated_at=now(), updated_by=user))
    else:
        row.value, row.updated_at, row.updated_by = value, now(), user
    db.session.commit()
    logger.info("alert addresses set to %r by %s", value, user)
    return checked


def setting_changed_by() -> tuple[str, dt.datetime] | None:
    """Return who set the alert addresses last, and when (None if they are not set here)."""
    row = db.session.get(Setting, EMAIL_TO_KEY)
    return (row.updated_by, row.updated_at) if row is not None else None


def _camera(name: str) -> Camera:
    camera = db.session.scalar(select(Camera).where(Camera.name == name))
    if camera is None:
        raise UnknownCamera(f"there is no camera named {name!r}")
    return camera


def mute(name: str, length: dt.timedelta | None, user: str) -> dt.datetime | None:
    """Mute a camera's alerts for ``length`` from now, or unmute it (None); return the end."""
    if length is not None and not dt.timedelta(0) < length <= MAX_MUTE:
        raise AlertSettingsError("a mute lasts more than 0 and at most 30 days")
    camera = _camera(name)
    camera.alerts_muted_until = now() + length if length is not None else None
    db.session.commit()
    logger.info("alerts of %s %s by %s", name,
                f"muted until {camera.alerts_muted_until}" if length else "unmuted", user)
    return camera.alerts_muted_until


def mutes() -> list[Mute]:
    """Return the cameras whose alerts are muted now, sorted by name."""
    rows = db.session.execute(select(Camera.name, Camera.alerts_muted_until)
                              .where(Camera.alerts_muted_until > now())
                              .order_by(Camera.name))
    return [Mute(name, until) for name, until in rows]


def request_test_email(user: str) -> Alert:
    """Queue a test email: a pending alert that the hub's sender delivers to the recipients."""
    at = now()
    stamp = at.strftime("%Y-%m-%d %H:%M:%S UTC")
    alert = Alert(
        created_at=at, kind=TEST_KIND, camera=None, subject=TEST_SUBJECT,
        body=(f"This is a test email of the NVR's alerts, sent at the request of {user} on "
              f"{stamp} from the web app. If you can read it, the hub can email you alerts."),
        details=json.dumps({"requested_by": user}), status="pending", attempts=0,
        next_attempt_at=at, requested_by=user)
    db.session.add(alert)
    db.session.commit()
    logger.info("test email requested by %s (alert %d)", user, alert.id)
    return alert


def latest_test_alert() -> Alert | None:
    """Return the newest test email, whatever became of it."""
    return db.session.scalar(select(Alert).where(Alert.kind == TEST_KIND)
                             .order_by(Alert.created_at.desc(), Alert.id.desc()).limit(1))
