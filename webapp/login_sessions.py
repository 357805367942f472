"""Server-side login sessions: made at login, checked on every request, revoked at logout.

The session cookie and Flask-Login's remember-me cookie both carry only a random token (the
user's `get_id()`); the users database keeps its SHA-256 in ``login_sessions``. A cookie is
worth something only while its row is live: not revoked (logout, a new password, an admin's
"sign out everywhere", a disabled account), not idle for longer than SESSION_IDLE_TIMEOUT
(REMEMBER_IDLE_TIMEOUT with "remember me") and not past its absolute end
(PERMANENT_SESSION_LIFETIME, or REMEMBER_COOKIE_DURATION with "remember me").
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets

from flask import current_app, g, request
from sqlalchemy import ColumnElement, and_, delete, func, not_, or_, select, update

from .config import USERS_BIND
from .extensions import db
from .models import USER_AGENT_MAX, LoginSession, User, hash_session_token

logger = logging.getLogger(__name__)

# last_seen_at is written at most this often per session: a page with many thumbnails costs
# one indexed read per request, not one write.
TOUCH_INTERVAL = dt.timedelta(seconds=60)
ADDRESS_MAX = 64


def _now() -> dt.datetime:
    return current_app.config["CLOCK"]()


def _idle_limit(remember: bool) -> dt.timedelta:
    return current_app.config["REMEMBER_IDLE_TIMEOUT" if remember else "SESSION_IDLE_TIMEOUT"]


def _lifetime(remember: bool) -> dt.timedelta:
    config = current_app.config
    return config["REMEMBER_COOKIE_DURATION"] if remember else config["PERMANENT_SESSION_LIFETIME"]


def create(user: User, remember: bool, address: str) -> str:
    """Record a new login session of ``user`` and return its token (for the cookies)."""
    now = _now()
    token = secrets.token_urlsafe(32)
    db.session.add(LoginSession(
        id=hash_session_token(token), user_id=user.id, created_at=now, last_seen_at=now,
        expires_at=now + _lifetime(remember), remember=remember, address=address[:ADDRESS_MAX],
        user_agent=(request.user_agent.string or "")[:USER_AGENT_MAX]))
    purge_dead(now)
    db.session.commit()
    return token


def resolve(token: str) -> User | None:
    """Return the user of a live session token, or None (one primary-key lookup)."""
    row = db.session.execute(
        select(LoginSession, User).join(User, User.id == LoginSession.user_id)
        .where(LoginSession.id == hash_session_token(token))).first()
    if row is None:
        return None
    login, user = row
    now = _now()
    if login.revoked_at is not None or not user.active:
        return None
    if now >= login.expires_at or now - login.last_seen_at > _idle_limit(login.remember):
        g.session_expired = True  # the login page says so
        return None
    if now - login.last_seen_at >= TOUCH_INTERVAL:
        _touch(login.id, now)
    user.login_token = token
    return user


def _touch(session_id: str, now: dt.datetime) -> None:
    # Its own short transaction: the request's session is left with nothing to commit.
    with db.engines[USERS_BIND].begin() as connection:
        connection.execute(update(LoginSession).where(LoginSession.id == session_id)
                           .values(last_seen_at=now))


def revoke(token: str | None) -> None:
    """Revoke one session (logout): its session and remember-me cookies stop working."""
    if not token:
        return
    db.session.execute(update(LoginSession)
                       .where(LoginSession.id == hash_session_token(token),
                              LoginSession.revoked_at.is_(None))
                       .values(revoked_at=_now()))
    db.session.commit()


def _live(now: dt.datetime) -> ColumnElement[bool]:
    """The SQL form of `resolve`'s test: unrevoked, before its end, used recently enough."""
    return and_(LoginSession.revoked_at.is_(None), LoginSession.expires_at > now, or_(
        and_(LoginSession.remember.is_(False),
             LoginSession.last_seen_at >= now - _idle_limit(remember=False)),
        and_(LoginSession.remember.is_(True),
             LoginSession.last_seen_at >= now - _idle_limit(remember=True))))


def live_counts() -> dict[int, int]:
    """Return how many live sessions each user has (for the Users page)."""
    rows = db.session.execute(select(LoginSession.user_id, func.count())
                              .where(_live(_now())).group_by(LoginSession.user_id))
    return {user_id: count for user_id, count in rows}


def purge_dead(now: dt.datetime) -> None:
    """Delete the rows of sessions that can never be used again (revoked, expired, idle)."""
    db.session.execute(delete(LoginSession).where(not_(_live(now))))
