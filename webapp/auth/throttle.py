"""Failed-login throttling in the users database, shared by every web-app process.

A password is checked only after a check was *reserved* for three keys, in one transaction that
locks their rows (``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite the transaction's first
statement is a write, which takes the database's write lock), so parallel tries never get more
checks than the limits allow:

- ``addr:IP``: at most LOGIN_ADDRESS_MAX_FAILURES checks per LOGIN_FAILURE_WINDOW from one
  address, whatever the account (one address guessing many accounts);
- ``pair:NAME|IP``: at most LOGIN_MAX_FAILURES per window for one account from one address;
- ``acct:NAME``: an account under a distributed attack is slowed down, never locked: after
  LOGIN_ACCOUNT_SLOWDOWN_AFTER checks in the window, one more check may run only after a delay
  that doubles each time (LOGIN_ACCOUNT_DELAY up to LOGIN_ACCOUNT_MAX_DELAY). Addresses the
  user logged in from before (within LOGIN_KNOWN_ADDRESS_LIFETIME) skip this key, so the owner
  at home still gets in while the account is hammered from elsewhere.

A successful login gives its reservation back (and clears its ``pair`` key); a failed one
keeps it: the counters count failures plus checks in flight. A refused try counts nothing.

Face sign-in's tries (``factor="face"``, the second step after the password) count as password
tries do: the same ``addr`` key, and ``face:pair:...``/``face:acct:...`` keys with the same
limits. A picture in which no face could be compared gives its check back (`release`).

Why not the `limits` library or Flask-Limiter (which is built on it): their storages are memory,
Redis, Memcached, MongoDB and etcd, none of them SQL, and they count requests rather than
reserve a check and give it back after a success.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ..models import KnownAddress, LoginCounter, User

THROTTLE_EXTENSION = "nvr.login_throttle"  # key of the app's throttle in app.extensions
KEY_MAX = 200  # LoginCounter.key's length; longer usernames are cut (they cannot log in anyway)
FACTORS = ("password", "face")  # what a check checks: the password, or face sign-in's picture


class ThrottleRefused(Exception):
    """No password check now: ``reason`` is "address" or "account"; retry after ``retry_after`` s."""

    def __init__(self, reason: str, retry_after: float) -> None:
        super().__init__(f"login throttled ({reason}) for {retry_after:.0f} s")
        self.reason = reason
        self.retry_after = max(1, math.ceil(retry_after))


@dataclass(frozen=True)
class ThrottleLimits:
    """The limits of `LoginThrottle` (from the app's LOGIN_* config keys)."""

    window: dt.timedelta
    pair_max: int
    address_max: int
    account_free: int
    account_delay: dt.timedelta
    account_max_delay: dt.timedelta
    known_lifetime: dt.timedelta

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ThrottleLimits:
        """Read the limits from a Flask config."""
        return cls(window=config["LOGIN_FAILURE_WINDOW"], pair_max=config["LOGIN_MAX_FAILURES"],
                   address_max=config["LOGIN_ADDRESS_MAX_FAILURES"],
                   account_free=config["LOGIN_ACCOUNT_SLOWDOWN_AFTER"],
                   account_delay=config["LOGIN_ACCOUNT_DELAY"],
                   account_max_delay=config["LOGIN_ACCOUNT_MAX_DELAY"],
                   known_lifetime=config["LOGIN_KNOWN_ADDRESS_LIFETIME"])

    def account_delay_after(self, attempts: int) -> dt.timedelta | None:
        """Return the pause an account needs after its ``attempts``-th check (None: no pause)."""
        over = attempts - self.account_free
        if over < 0:
            return None
        seconds = self.account_delay.total_seconds() * 2 ** min(over, 32)
        return min(dt.timedelta(seconds=seconds), self.account_max_delay)


class _Counter(NamedTuple):
    key: str
    attempts: int
    window_start: dt.datetime
    next_check_at: dt.datetime | None


@dataclass(frozen=True)
class Reservation:
    """The keys one password check was counted against."""

    address: str
    username: str
    keys: tuple[str, ...]
    factor: str = "password"


def throttle_keys(username: str, address: str,
                  factor: str = "password") -> tuple[str, str, str]:
    """Return the address, (account, address) and account keys of a login try of ``factor``."""
    if factor not in FACTORS:
        raise ValueError(f"unknown factor {factor!r}")
    name = username.casefold()
    prefix = "" if factor == "password" else f"{factor}:"  # the address key is shared
    return (f"addr:{address}"[:KEY_MAX], f"{prefix}pair:{name}|{address}"[:KEY_MAX],
            f"{prefix}acct:{name}"[:KEY_MAX])


class LoginThrottle:
    """Reserves password checks against the counters in the users database (see the module)."""

    def __init__(self, engine: Callable[[], Engine], clock: Callable[[], dt.datetime],
                 limits: ThrottleLimits) -> None:
        self.engine = engine
        self.clock = clock
        self.limits = limits

    def reserve(self, username: str, address: str, factor: str = "password") -> Reservation:
        """Count one check of ``factor`` for this try, or raise `ThrottleRefused` counting nothing."""
        now = self.clock()
        address_key, pair_key, account_key = throttle_keys(username, address, factor)
        known = self._is_known(username, address, now)
        keys = (address_key, pair_key) if known else (address_key, pair_key, account_key)
        with self.engine().begin() as connection:
            _insert_missing(connection, keys, now)  # a write first: SQLite's lock for the rest
            self._take(connection, address_key, now, self.limits.address_max, "address")
            self._take(connection, pair_key, now, self.limits.pair_max, "address")
            if not known:
                self._take_account(connection, account_key, now)
        return Reservation(address, username, keys, factor)

    def succeeded(self, reservation: Reservation, user_id: int) -> None:
        """Give a successful check back, clear its (account, address) count, trust the address."""
        now = self.clock()
        pair_key = throttle_keys(reservation.username, reservation.address, reservation.factor)[1]
        with self.engine().begin() as connection:
            _give_back(connection, reservation, clear=pair_key)
            _upsert_known(connection, user_id, reservation.address, now)

    def release(self, reservation: Reservation) -> None:
        """Give back a check that compared nothing (a picture without a usable face)."""
        with self.engine().begin() as connection:
            _give_back(connection, reservation, clear=None)

    def purge(self) -> None:
        """Delete counters whose window has passed and addresses not used for long."""
        now = self.clock()
        with self.engine().begin() as connection:
            connection.execute(delete(LoginCounter).where(
                LoginCounter.window_start <= now - self.limits.window,
                (LoginCounter.next_check_at.is_(None)) | (LoginCounter.next_check_at <= now)))
            connection.execute(delete(KnownAddress).where(
                KnownAddress.last_login_at <= now - self.limits.known_lifetime))

    def _is_known(self, username: str, address: str, now: dt.datetime) -> bool:
        since = now - self.limits.known_lifetime
        with self.engine().connect() as connection:
            found = connection.scalar(
                select(KnownAddress.user_id).join(User, User.id == KnownAddress.user_id)
                .where(User.username == username, KnownAddress.address == address,
                       KnownAddress.last_login_at > since))
        return found is not None

    def _locked_row(self, connection: Connection, key: str, now: dt.datetime) -> _Counter:
        """Return the key's counter, locked for this transaction, its window restarted if over."""
        row = connection.execute(select(LoginCounter.attempts, LoginCounter.window_start,
                                        LoginCounter.next_check_at)
                                 .where(LoginCounter.key == key).with_for_update()).one()
        if row.window_start <= now - self.limits.window:
            return _Counter(key, 0, now, None)
        return _Counter(key, row.attempts, row.window_start, row.next_check_at)

    def _take(self, connection: Connection, key: str, now: dt.datetime, limit: int,
              reason: str) -> None:
        counter = self._locked_row(connection, key, now)
        if counter.attempts >= limit:
            wait = counter.window_start + self.limits.window - now
            raise ThrottleRefused(reason, wait.total_seconds())
        _store(connection, counter, counter.attempts + 1, counter.next_check_at)

    def _take_account(self, connection: Connection, key: str, now: dt.datetime) -> None:
        counter = self._locked_row(connection, key, now)
        if counter.next_check_at is not None and counter.next_check_at > now:
            raise ThrottleRefused("account", (counter.next_check_at - now).total_seconds())
        attempts = counter.attempts + 1
        delay = self.limits.account_delay_after(attempts)
        _store(connection, counter, attempts, None if delay is None else now + delay)


def _give_back(connection: Connection, reservation: Reservation, clear: str | None) -> None:
    """Take one check off each of the reservation's keys; delete the ``clear`` key's row."""
    # Row by row in reserve()'s order (address, pair, account): PostgreSQL's row locks are
    # then always taken in one order, and two logins cannot deadlock.
    for key in reservation.keys:
        if key == clear:
            connection.execute(delete(LoginCounter).where(LoginCounter.key == key))
        else:
            connection.execute(update(LoginCounter)
                               .where(LoginCounter.key == key, LoginCounter.attempts > 0)
                               .values(attempts=LoginCounter.attempts - 1))


def _store(connection: Connection, counter: _Counter, attempts: int,
           next_check_at: dt.datetime | None) -> None:
    connection.execute(update(LoginCounter).where(LoginCounter.key == counter.key).values(
        attempts=attempts, window_start=counter.window_start, next_check_at=next_check_at))


def _insert(connection: Connection) -> Any:
    """Return the dialect's INSERT (both have ON CONFLICT), for SQLite and PostgreSQL."""
    return (postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert)


def _insert_missing(connection: Connection, keys: tuple[str, ...], now: dt.datetime) -> None:
    rows = [{"key": key, "attempts": 0, "window_start": now} for key in keys]
    connection.execute(_insert(connection)(LoginCounter).values(rows)
                       .on_conflict_do_nothing(index_elements=[LoginCounter.key]))


def _upsert_known(connection: Connection, user_id: int, address: str, now: dt.datetime) -> None:
    statement = _insert(connection)(KnownAddress).values(
        user_id=user_id, address=address[:64], last_login_at=now)
    connection.execute(statement.on_conflict_do_update(
        index_elements=[KnownAddress.user_id, KnownAddress.address],
        set_={"last_login_at": now}))

