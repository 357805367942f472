"""The alert center: stores every alert, honours mutes, debounces, and emails through SendGrid.

Recording must never wait on email, so the work is split three ways:

1. ``notify()`` only puts the event on a queue: safe from the asyncio loop and any thread.
2. The store thread composes the email, checks the camera's mute and the debouncer, and
   inserts the Alert row (pending | muted | suppressed | logged). It also closes debounce
   windows on time (a timed wait on the queue) and stores their summary alerts.
3. The sender thread delivers 'pending' rows, oldest first, including rows the web app
   inserts (test emails): it wakes when the store thread adds one and polls the database
   every second for the rest. Failed requests are retried with back-off.

Each database write is its own short transaction: SQLite is shared with the catalog thread.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from recorder.health.messages import (
    Message, Suppressed, compose, compose_summary, duration_text, label_for, summary_details,
)
from nvrlib.catalog.models import Alert, Camera, Setting, utcnow
from nvrlib.redact import redact, redact_value
from recorder.config import AlertsConfig, valid_email
from recorder.health.mailer import Attachment, Delivery, Mailer, Outgoing

logger = logging.getLogger(__name__)

UTC = dt.timezone.utc
POLL_SECONDS = 1.0  # the store's tick, and the longest the sender sleeps before a due retry
# alerts the database would not take (out of descriptors, locked, unreachable), kept in memory
# and stored again every tick; beyond this many the oldest is given up, with an error logged
UNSTORED_KEPT = 1000
CLAIM_MARGIN_SECONDS = 30.0  # a claimed alert goes back to the others this long after its send timeout
# the sender's database poll for rows the web app inserts (a test email); the hub's own alerts
# wake the sender at once
SENDER_POLL_SECONDS = 2.0
SEND_BATCH = 20
EMAIL_TO_SETTING = "alerts.email_to"  # written by the web app: comma-separated addresses
EMAIL_OFF = "email is off: no SENDGRID_API_KEY"

NEVER_DEBOUNCED = frozenset({"test"})
# one key per kind, not per camera; new cameras too: a host inventing names must not send
# one email per name (the first debounce_burst are emailed at once, the rest in one summary)
KIND_KEYED = frozenset({"disk_low", "disk_emergency", "summary", "new_camera"})
# kinds with a window per camera of their own: a burst of motion (or of faces) must not hold
# back the news that the same camera went offline
OWN_WINDOW = frozenset({"motion", "face"})


_PENDING = select(func.count().label("count"),
                  func.min(Alert.next_attempt_at).label("retry_at")).where(Alert.status == "pending")


@dataclasses.dataclass(frozen=True)
class AlertEvent:
    """Something worth telling the owner about, as the hub saw it."""

    kind: str  # new_camera | offline | online | failing | stalled | disk_low | ...
    camera: str | None
    at: dt.datetime  # aware UTC
    details: dict[str, Any]


@dataclasses.dataclass
class _Unstored:
    """An alert on its way into the database, and what was decided about it so far."""

    event: AlertEvent
    status: str | None = None  # pending | muted | suppressed | logged, once decided
    attempts: int = 0


@dataclasses.dataclass(frozen=True)
class EmailState:
    """Whether email is on, and where alerts go right now (for health and the web app)."""

    enabled: bool
    recipients_source: str  # environment | web | config | none
    recipients: tuple[str, ...]


def debounce_key(kind: str, camera: str | None) -> str | None:
    """Return what an alert is debounced by (a camera or a kind), or None if never."""
    if kind in NEVER_DEBOUNCED:
        return None
    if kind in KIND_KEYED or camera is None:
        return f"kind:{kind}"
    if kind in OWN_WINDOW:
        return f"{kind}:{camera}"
    return f"camera:{camera}"


@dataclasses.dataclass
class DebounceWindow:
    """One key's open window: how many alerts it emailed, and the ones it held back."""

    key: str
    kind: str  # the kind of the alert that opened it (names hub-wide windows)
    camera: str | None
    ends_at: dt.datetime
    emailed: int = 0
    suppressed: list[Suppressed] = dataclasses.field(default_factory=list)


class Debouncer:
    """At most ``burst`` emails per key per window; the rest wait for one summary at its end."""

    def __init__(self, window_seconds: float, burst: int) -> None:
        self.window = dt.timedelta(seconds=window_seconds)
        self.burst = burst
        self._windows: dict[str, DebounceWindow] = {}

    def admit(self, key: str, camera: str | None, now: dt.datetime, alert: Suppressed) -> bool:
        """Tell whether this alert may be emailed; if not, remember it for the summary."""
        window = self._windows.get(key)
        if window is None or now >= window.ends_at:
            window = DebounceWindow(key, alert.kind, camera, now + self.window)
            self._windows[key] = window
        if window.emailed < self.burst:
            window.emailed += 1
            return True
        window.suppressed.append(alert)
        return False

    def due(self, now: dt.datetime) -> list[DebounceWindow]:
        """Close the windows that ended; return those that held alerts back."""
        ended = [w for w in self._windows.values() if now >= w.ends_at]
        for window in ended:
            del self._windows[window.key]
        return [w for w in ended if w.suppressed]

    def drain(self) -> list[DebounceWindow]:
        """Close every window now (the hub is stopping); return those that held alerts back."""
        windows, self._windows = list(self._windows.values()), {}
        return [w for w in windows if w.suppressed]

    def next_deadline(self) -> dt.datetime | None:
        """When the next window that holds alerts back ends (None if none does)."""
        ends = [w.ends_at for w in self._windows.values() if w.suppressed]
        return min(ends) if ends else None


@dataclasses.dataclass(frozen=True)
class _Pending:
    """What the sender needs of an Alert row, read in one short session."""

    id: int
    kind: str
    camera: str | None
    subject: str
    body: str
    created_at: dt.datetime
    attempts: int
    details: dict[str, Any]
    requested_by: str


_STOP = object()


class AlertCenter:
    """Stores, mutes, debounces and emails the hub's alerts; see the module docstring."""

    def __init__(self, config: AlertsConfig, engine: sqlalchemy.Engine, *,
                 clock: Callable[[], dt.datetime] = utcnow,
                 attach: Callable[[str, dict[str, Any]], tuple[Attachment, ...]] | None = None,
                 ) -> None:
        self._config = config
        # the files an alert's email carries, from its kind and details (a motion snapshot)
        self._attach = attach or (lambda _kind, _details: ())
        self._engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._clock = clock
        self._queue: queue.Queue[object] = queue.Queue()
        self._debouncer = Debouncer(config.debounce_window, config.debounce_burst)
        self._mailer = Mailer(config) if config.api_key else None
        self._wake = threading.Event()  # the store thread added a pending row
        self._stopping = threading.Event()  # the sender finishes what is due, then exits
        self._drain_deadline = float("inf")  # time.monotonic() by which the sender must be done
        self._unstored = 0
        self._unstored_changed = threading.Condition()
        self._retry: collections.deque[_Unstored] = collections.deque()  # store thread only
        self._threads: list[threading.Thread] = []
        self._stopped = False
        self._bad_setting: str | None = None  # the web app's addresses we last warned about

    # -- the hub's side -------------------------------------------------------------------

    def start(self) -> None:
        """Start the store and sender threads; say once whether email is on."""
        if self._threads:
            return
        if self._mailer is None:
            logger.warning("email alerts are off: no SENDGRID_API_KEY")
        else:
            count = len(self._state_or_config().recipients)
            logger.info("email alerts go to %d address(es) via %s", count, self._config.api_host)
            if not valid_email(self._config.email_from):
                logger.warning("alerts are sent from %s, which SendGrid refuses: set ALERT_EMAIL_FROM "
                               "or [alerts] email_from to a sender verified in your account",
                               self._config.email_from)
        self._threads = [threading.Thread(target=self._store_loop, name="alerts-store", daemon=True),
                         threading.Thread(target=self._send_loop, name="alerts-send", daemon=True)]
        for thread in self._threads:
            thread.start()

    def notify(self, event: AlertEvent) -> None:
        """Queue an alert for storing and sending; never blocks (callable from the event loop)."""
        if self._stopped:
            logger.warning("alert after the alert center stopped, not stored: %s %s",
                           event.kind, event.camera or "")
            return
        with self._unstored_changed:
            self._unstored += 1
        self._queue.put(event)

    def flush(self, timeout: float) -> None:
        """Wait until every event notified so far is stored; raise TimeoutError if it takes longer."""
        deadline = time.monotonic() + timeout
        with self._unstored_changed:
            while self._unstored:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._unstored_changed.wait(remaining):
                    if self._unstored:
                        raise TimeoutError(f"{self._unstored} alert(s) still not stored")

    def stop(self, timeout: float = 5.0) -> None:
        """Store everything queued, give due emails until ``timeout``, then stop the threads."""
        if self._stopped:
            return
        self._stopped = True
        if not self._threads:
            return
        deadline = time.monotonic() + timeout
        # the sender's last requests must end before the deadline, so stop() keeps its bound
        self._drain_deadline = deadline - min(0.2, timeout / 4)
        self._queue.put(_STOP)
        store, sender = self._threads
        store.join(max(deadline - time.monotonic(), 0))
        if store.is_alive():
            logger.warning("alert store thread did not finish within %g s", timeout)
        self._stopping.set()
        self._wake.set()
        sender.join(max(deadline - time.monotonic(), 0))
        if sender.is_alive():
            logger.warning("alert sender still busy after %g s; undelivered alerts stay pending "
                           "for the next start", timeout)

    def email_state(self) -> EmailState:
        """Say whether email is on and who gets alerts, resolved as the sender does."""
        enabled = self._mailer is not None
        if self._config.email_to_from_environment:
            return EmailState(enabled, "environment", self._config.email_to)
        web = self._web_recipients()
        if web:
            return EmailState(enabled, "web", web)
        if self._config.email_to:
            return EmailState(enabled, "config", self._config.email_to)
        return EmailState(enabled, "none", ())

    # -- the store thread -----------------------------------------------------------------

    def _store_loop(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self._store_wait())
            except queue.Empty:
                item = None
            try:
                # windows close first, so a summary precedes the alerts of the next window
                self._store_summaries(self._debouncer.due(self._clock()))
            except Exception:  # noqa: BLE001 - a database error must not end the thread
                logger.exception("could not store a debounce summary")
            if item is _STOP:
                try:
                    self._store_summaries(self._debouncer.drain())
                except Exception:  # noqa: BLE001
                    logger.exception("could not store the last debounce summaries")
                self._store_again()
                for lost in self._retry:
                    logger.error("the %s alert for %s was never stored: the database would "
                                 "not take it", lost.event.kind, lost.event.camera or "")
                    self._stored_one()
                return
            if isinstance(item, AlertEvent):
                unstored = _Unstored(item)
                if self._retry or not self._attempt(unstored):
                    self._keep(unstored)  # in order: after the ones still waiting
            self._store_again()

    def _attempt(self, item: _Unstored) -> bool:
        """Store one alert; False (and a log line on the first failure) if the database fails."""
        try:
            self._store(item)
        except Exception:  # noqa: BLE001 - a database error must not lose the alert
            item.attempts += 1
            if item.attempts == 1:
                logger.exception("could not store the %s alert for %s: trying again every "
                                 "%.0f s", item.event.kind, item.event.camera or "", POLL_SECONDS)
            return False
        self._stored_one()
        return True

    def _keep(self, item: _Unstored) -> None:
        if len(self._retry) >= UNSTORED_KEPT:
            oldest = self._retry.popleft()
            logger.error("the %s alert for %s is given up: %d alerts wait for the database",
                         oldest.event.kind, oldest.event.camera or "", UNSTORED_KEPT)
            self._stored_one()
        self._retry.append(item)

    def _store_again(self) -> None:
        """Store the alerts the database refused before, oldest first, until one fails again."""
        while self._retry and self._attempt(self._retry[0]):
            self._retry.popleft()

    def _stored_one(self) -> None:
        with self._unstored_changed:
            self._unstored -= 1
            self._unstored_changed.notify_all()

    def _store_wait(self) -> float:
        deadline = self._debouncer.next_deadline()
        if deadline is None:
            return POLL_SECONDS
        return min(max((deadline - self._clock()).total_seconds(), 0.0), POLL_SECONDS)

    def _store(self, item: _Unstored) -> None:
        event = item.event
        at = event.at if event.at.tzinfo else event.at.replace(tzinfo=UTC)
        # viewers read alerts (Events, /api/v1/events): a camera URL in an error loses its secrets
        details = redact_value(event.details)
        message = compose(event.kind, event.camera, at, details, self._config.subject_prefix)
        now = self._clock()
        with self._sessions.begin() as session:
            if item.status is None:  # decided once: the debouncer counts an alert only once
                item.status = self._status_for(session, event, at, message, now)
            row = Alert(created_at=at, kind=event.kind, camera=event.camera,
                        subject=redact(message.subject), body=redact(message.body),
                        details=json.dumps(details, default=str), status=item.status)
            session.add(row)
            session.flush()
            alert_id = row.id
        self._after_store(alert_id, item.status, message.subject)

    def _status_for(self, session: Session, event: AlertEvent, at: dt.datetime,
                    message: Message, now: dt.datetime) -> str:
        if event.camera is not None and self._muted(session, event.camera, now):
            return "muted"  # a muted camera's alerts count toward no debounce window
        key = debounce_key(event.kind, event.camera)
        camera = event.camera if key is not None and not key.startswith("kind:") else None
        if key is not None and not self._debouncer.admit(
                key, camera, now, Suppressed(at, event.kind, message.headline)):
            return "suppressed"
        return "pending" if self._mailer is not None else "logged"

    @staticmethod
    def _muted(session: Session, camera: str, now: dt.datetime) -> bool:
        until = session.scalar(select(Camera.alerts_muted_until).where(Camera.name == camera))
        return until is not None and until > now

    def _store_summaries(self, windows: list[DebounceWindow]) -> None:
        for window in windows:
            now = self._clock()
            seconds = self._debouncer.window.total_seconds()
            message = compose_summary(label_for(window.kind, window.camera), window.camera,
                                      window.suppressed, seconds, now, self._config.subject_prefix)
            with self._sessions.begin() as session:
                muted = window.camera is not None and self._muted(session, window.camera, now)
                status = "muted" if muted else ("pending" if self._mailer else "logged")
                row = Alert(created_at=now, kind="summary", camera=window.camera,
                            subject=redact(message.subject), body=redact(message.body),
                            status=status, details=json.dumps(
                                redact_value(summary_details(window.suppressed, seconds))))
                session.add(row)
                session.flush()
                alert_id = row.id
            self._after_store(alert_id, status, message.subject)

    def _after_store(self, alert_id: int, status: str, subject: str) -> None:
        if status == "pending":
            logger.info("alert #%d: %s", alert_id, subject)
            self._wake.set()
        elif status == "logged":
            logger.warning("alert #%d (%s): %s", alert_id, EMAIL_OFF, subject)
        else:
            logger.info("alert #%d %s, not emailed: %s", alert_id, status, subject)

    # -- the sender thread ----------------------------------------------------------------

    def _send_loop(self) -> None:
        while True:
            self._wake.clear()  # before the query: a row stored after it wakes the next wait
            try:
                busy, idle_wait = self._send_due()
            except Exception:  # noqa: BLE001 - the database may be busy; try again next tick
                logger.exception("alert delivery: cannot read or update the alerts table")
                busy, idle_wait = False, POLL_SECONDS
            if self._stopping.is_set() and (not busy or time.monotonic() >= self._drain_deadline):
                return
            if not busy:
                self._wake.wait(idle_wait)

    def _send_due(self) -> tuple[bool, float]:
        """Deliver the due rows; return whether there were any, and how long to idle if not."""
        now = self._clock()
        # a plain connection, not an ORM session, and one query when nothing is pending (the
        # usual answer): this poll runs every second of the hub's life
        with self._engine.connect() as conn:
            pending = conn.execute(_PENDING).one()
            ids: list[int] = []
            if pending.count:
                ids = list(conn.scalars(
                    select(Alert.id)
                    .where(Alert.status == "pending",
                           or_(Alert.next_attempt_at.is_(None), Alert.next_attempt_at <= now))
                    .order_by(Alert.created_at, Alert.id).limit(SEND_BATCH)).all())
            if not ids:  # sleep until the next retry is due, if that comes before the next poll
                retry_at = pending.retry_at
                wait = (SENDER_POLL_SECONDS if retry_at is None
                        else (retry_at - now).total_seconds())
                return False, min(max(wait, 0.01), SENDER_POLL_SECONDS)
        for alert_id in ids:
            if self._stopping.is_set() and time.monotonic() >= self._drain_deadline:
                break
            self._deliver(alert_id)
        return True, 0.0

    def _load(self, alert_id: int) -> _Pending | None:
        with self._sessions() as session:
            row = session.get(Alert, alert_id)
            if row is None or row.status != "pending":
                return None
            try:
                details = json.loads(row.details or "{}")
            except ValueError:
                details = {}
            return _Pending(row.id, row.kind, row.camera, row.subject, row.body, row.created_at,
                            row.attempts, details if isinstance(details, dict) else {},
                            row.requested_by)

    def _claim(self, alert_id: int) -> bool:
        """Take a due alert for this hub for a while (a lease), so that another hub of the
        catalog does not email it too; a hub that dies while sending leaves it to the next."""
        now = self._clock()
        lease = now + dt.timedelta(seconds=self._config.send_timeout + CLAIM_MARGIN_SECONDS)
        with self._sessions.begin() as session:
            claimed = session.execute(
                update(Alert).where(Alert.id == alert_id, Alert.status == "pending",
                                    or_(Alert.next_attempt_at.is_(None),
                                        Alert.next_attempt_at <= now))
                .values(next_attempt_at=lease))
            return claimed.rowcount == 1

    def _deliver(self, alert_id: int) -> None:
        if not self._claim(alert_id):
            return  # another hub took it, or it is no longer due
        alert = self._load(alert_id)
        if alert is None:
            return
        values: dict[str, Any] = {}
        subject, body = alert.subject, alert.body
        if not subject or not body:  # the web app may leave the wording to the hub
            details = {"requested_by": alert.requested_by, **alert.details}
            message = compose(alert.kind, alert.camera, alert.created_at, details,
                              self._config.subject_prefix)
            subject, body = subject or message.subject, body or message.body
            values.update(subject=subject, body=body)
        if self._mailer is None:
            logger.warning("alert #%d (%s): %s", alert.id, EMAIL_OFF, subject)
            self._finish(alert.id, status="logged", last_error=EMAIL_OFF, **values)
            return
        recipients = self.email_state().recipients
        if not recipients:
            logger.error("alert #%d not emailed: no recipients configured (set ALERT_EMAIL_TO, "
                         "[alerts] email_to or the addresses in the web app): %s", alert.id, subject)
            self._finish(alert.id, status="failed", last_error="no recipients configured", **values)
            return
        timeout = None
        if self._stopping.is_set():
            timeout = self._drain_deadline - time.monotonic()
        attachments = self._attach(alert.kind, alert.details)
        delivery = self._mailer.send(Outgoing(alert.id, alert.kind, alert.camera, subject, body,
                                              recipients, attachments), timeout=timeout)
        values.update(attempts=alert.attempts + 1, recipients=",".join(recipients))
        values.update(self._outcome(alert, delivery, values["attempts"], subject))
        self._finish(alert.id, **values)

    def _outcome(self, alert: _Pending, delivery: Delivery, attempts: int,
                 subject: str) -> dict[str, Any]:
        now = self._clock()
        if delivery.outcome == "sent":
            logger.info("alert #%d emailed: %s", alert.id, subject)
            return {"status": "sent", "sent_at": now, "next_attempt_at": None}
        if delivery.outcome == "failed":
            logger.error("alert #%d not emailed, SendGrid refused it: %s", alert.id, delivery.error)
            return {"status": "failed", "last_error": delivery.error, "next_attempt_at": None}
        age = (now - alert.created_at).total_seconds()
        if age >= self._config.give_up_after:
            error = (f"gave up after {attempts} attempts in {duration_text(age)}: "
                     f"{delivery.error}")
            logger.error("alert #%d not emailed: %s", alert.id, error)
            return {"status": "failed", "last_error": error, "next_attempt_at": None}
        delay = min(self._config.retry_initial * 2 ** min(attempts - 1, 40), self._config.retry_max)
        logger.warning("alert #%d not emailed yet (attempt %d): %s; next try in %.3g s",
                       alert.id, attempts, delivery.error, delay)
        return {"last_error": delivery.error, "next_attempt_at": now + dt.timedelta(seconds=delay)}

    def _finish(self, alert_id: int, **values: Any) -> None:
        with self._sessions.begin() as session:
            session.execute(update(Alert).where(Alert.id == alert_id, Alert.status == "pending")
                            .values(**values))

    # -- recipients -----------------------------------------------------------------------

    def _web_recipients(self) -> tuple[str, ...]:
        with self._engine.connect() as conn:
            raw = conn.scalar(select(Setting.value).where(Setting.key == EMAIL_TO_SETTING)) or ""
        items = [part.strip() for part in raw.replace(";", ",").split(",") if part.strip()]
        good = tuple(item for item in items if valid_email(item))
        if len(good) != len(items) and raw != self._bad_setting:
            self._bad_setting = raw  # warn once per value, not on every alert
            logger.warning("ignoring invalid alert address(es) set in the web app: %s",
                           ", ".join(item for item in items if not valid_email(item)))
        return good

    def _state_or_config(self) -> EmailState:
        try:
            return self.email_state()
        except SQLAlchemyError as exc:
            logger.warning("cannot read the alert addresses set in the web app: %s", exc)
            return EmailState(self._mailer is not None, "config" if self._config.email_to else "none",
                              self._config.email_to)
