"""The caps on viewer locks (issue 9): how many locks, and how many hours in all, per user.

An admin sets them on the Locks page; they are ``settings`` rows of the catalog
(``locks.max_count``, ``locks.max_hours``), so every web-app process reads the same values,
and a missing row means the default. Admins themselves are not capped: their locks are the
owner's decisions (and the last to yield in a full-disk emergency, docs/design/health.md).
"""

from __future__ import annotations

import dataclasses
import logging
import math

from sqlalchemy import select

from nvrlib.catalog.models import RecordingLock, Setting

from ..extensions import db
from ..security import now

logger = logging.getLogger(__name__)

MAX_COUNT_KEY = "locks.max_count"
MAX_HOURS_KEY = "locks.max_hours"
DEFAULT_MAX_COUNT = 10
DEFAULT_MAX_HOURS = 72.0  # three days: a weekend's incident with room to spare
COUNT_RANGE = (0, 1000)  # 0: viewers may not lock at all
HOURS_RANGE = (0.0, 24.0 * 366)  # a lock covers at most 366 days (locks.MAX_SPAN)


class LimitError(ValueError):
    """A cap outside its range; the message starts with the field's name."""


@dataclasses.dataclass(frozen=True)
class LockLimits:
    """The caps of every viewer: active locks, and their total hours."""

    max_count: int = DEFAULT_MAX_COUNT
    max_hours: float = DEFAULT_MAX_HOURS

    def to_json(self) -> dict[str, float | int]:
        """Return the API's JSON object of the caps."""
        return {"max_locks": self.max_count, "max_hours": self.max_hours}


@dataclasses.dataclass(frozen=True)
class LockUsage:
    """What one user's locks take of the caps."""

    count: int
    hours: float


def _stored(key: str) -> str | None:
    row = db.session.get(Setting, key)
    return row.value if row is not None else None


def current_limits() -> LockLimits:
    """Return the caps an admin set, or the defaults (a malformed row counts as unset)."""
    count, hours = _stored(MAX_COUNT_KEY), _stored(MAX_HOURS_KEY)
    try:
        max_count = int(count) if count is not None else DEFAULT_MAX_COUNT
    except ValueError:
        max_count = DEFAULT_MAX_COUNT
    try:
        max_hours = float(hours) if hours is not None else DEFAULT_MAX_HOURS
    except ValueError:
        max_hours = DEFAULT_MAX_HOURS
    try:
        return check_limits(max_count, max_hours)
    except LimitError:  # edited by hand out of range: the defaults hold, not nonsense
        logger.warning("ignoring viewer lock caps out of range (%r, %r)", count, hours)
        return LockLimits()


def check_limits(max_count: int, max_hours: float) -> LockLimits:
    """Return the caps, or raise LimitError naming the one out of range."""
    if not COUNT_RANGE[0] <= max_count <= COUNT_RANGE[1]:
        raise LimitError(f"max_locks: from {COUNT_RANGE[0]} to {COUNT_RANGE[1]}")
    if not (math.isfinite(max_hours) and HOURS_RANGE[0] <= max_hours <= HOURS_RANGE[1]):
        raise LimitError(f"max_hours: from {HOURS_RANGE[0]:g} to {HOURS_RANGE[1]:g}")
    return LockLimits(max_count, max_hours)


def save_limits(max_count: int, max_hours: float, user: str) -> LockLimits:
    """Store the caps (admins only: the views check that); return them."""
    limits = check_limits(max_count, max_hours)
    for key, value in ((MAX_COUNT_KEY, str(limits.max_count)),
                       (MAX_HOURS_KEY, f"{limits.max_hours:g}")):
        row = db.session.get(Setting, key)
        if row is None:
            db.session.add(Setting(key=key, value=value, updated_at=now(), updated_by=user))
        else:
            row.value, row.updated_at, row.updated_by = value, now(), user
    db.session.commit()
    logger.info("viewer lock caps set to %d locks and %g hours by %s", limits.max_count,
                limits.max_hours, user)
    return limits


def usage_of(user: str) -> LockUsage:
    """Return how many viewer locks ``user`` has and how many hours they cover in all."""
    spans = db.session.execute(select(RecordingLock.start_time, RecordingLock.end_time).where(
        RecordingLock.created_by == user, RecordingLock.admin.is_(False))).all()
    # summed here, not in SQL: a viewer holds few locks, and date arithmetic differs per dialect
    seconds = sum((end - start).total_seconds() for start, end in spans)
    return LockUsage(len(spans), seconds / 3600)


def over_cap(usage: LockUsage, limits: LockLimits) -> str | None:
    """Say which cap ``usage`` exceeds ("locks: ...", "hours: ..."), or None within both."""
    if usage.count > limits.max_count:
        return (f"locks: a viewer may hold at most {limits.max_count} locks and this would be "
                f"lock {usage.count}; remove one, or ask an admin")
    if usage.hours > limits.max_hours + 1e-6:
        return (f"hours: a viewer's locks may cover at most {limits.max_hours:g} hours in all "
                f"and this would make {usage.hours:.1f}; lock a shorter range, remove a lock, "
                f"or ask an admin")
    return None
