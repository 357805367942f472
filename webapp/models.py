"""The users database: accounts, roles, argon2id password hashes, API token hashes, login
sessions, failed-login counters and the face sign-in embeddings."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from functools import lru_cache

from argon2 import Parameters, PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.profiles import RFC_9106_LOW_MEMORY
from flask import current_app, has_app_context
from flask_login import UserMixin
from sqlalchemy import Boolean, ForeignKey, Integer, LargeBinary, MetaData, String, false, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, object_session

from nvrlib.catalog.models import UTCDateTime, utcnow
from nvrlib.faces import EMBEDDING_BYTES

from .config import USERS_BIND

ROLE_ADMIN = "admin"
ROLE_VIEWER = "viewer"
ROLES = (ROLE_ADMIN, ROLE_VIEWER)
USERNAME_MAX = 64
PASSWORD_MAX = 1024  # argon2 takes any length; this only bounds the work one request can ask for
API_TOKEN_PREFIX = "nvr_"
USER_AGENT_MAX = 200  # kept for the sessions list; longer ones are cut
# OWASP's weakest acceptable argon2id setting (19 MiB, t=2, p=1); nothing below it is allowed.
OWASP_MIN_MEMORY_KIB = 19 * 1024
OWASP_MIN_TIME_COST = 2
HASHER_EXTENSION = "nvr.password_hasher"


class WeakHashParameters(ValueError):
    """The configured argon2 parameters are below OWASP's minimum."""


class UsersBase(DeclarativeBase):
    """Declarative base of the users database (a bind of its own, never the catalog)."""

    # Flask-SQLAlchemy routes every table of this metadata to SQLALCHEMY_BINDS["users"].
    metadata = MetaData(info={"bind_key": USERS_BIND})


def make_hasher(parameters: Parameters) -> PasswordHasher:
    """Return an argon2id hasher for ``parameters``, refusing any below OWASP's minimum."""
    if parameters.type is not Type.ID:
        raise WeakHashParameters("passwords must be hashed with argon2id")
    if parameters.memory_cost < OWASP_MIN_MEMORY_KIB or parameters.time_cost < OWASP_MIN_TIME_COST:
        raise WeakHashParameters(
            f"argon2id m={parameters.memory_cost} KiB, t={parameters.time_cost} is below OWASP's "
            f"minimum (m={OWASP_MIN_MEMORY_KIB} KiB, t={OWASP_MIN_TIME_COST})")
    return PasswordHasher.from_parameters(parameters)


def password_hasher() -> PasswordHasher:
    """Return the app's hasher (its ARGON2_PARAMETERS), or the default one outside an app."""
    if has_app_context() and HASHER_EXTENSION in current_app.extensions:
        return current_app.extensions[HASHER_EXTENSION]
    return _default_hasher()


@lru_cache(maxsize=1)
def _default_hasher() -> PasswordHasher:
    return make_hasher(RFC_9106_LOW_MEMORY)


def hash_api_token(token: str) -> str:
    """Return the stored form of an API token (SHA-256: the token itself is 256 random bits)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def username_problem(username: str) -> str | None:
    """Return what is wrong with a new username, or None if it is acceptable."""
    if not username or username != username.strip():
        return "A username must not be empty or start or end with a space."
    if len(username) > USERNAME_MAX:
        return f"A username has at most {USERNAME_MAX} characters."
    if any(not ch.isprintable() for ch in username):
        return "A username must not contain control characters."
    return None


def password_problem(password: str, min_length: int) -> str | None:
    """Return what is wrong with a new password, or None if it is acceptable."""
    if not password or not password.strip():
        return "The password is empty."
    if len(password) < min_length:
        return f"The password is too short: use at least {min_length} characters."
    if len(password) > PASSWORD_MAX:
        return f"The password is too long: use at most {PASSWORD_MAX} characters."
    return None


class User(UserMixin, UsersBase):
    """An account of the web app: an admin (everything) or a viewer (watch and export)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(USERNAME_MAX), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(8), default=ROLE_VIEWER)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    api_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    api_token_created_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Stream links (webapp/stream_links.py) carry this; end_sessions() adds one, ending them all.
    stream_link_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Face sign-in (a second step after the password) is on for this user; its embeddings are
    # the user's UserFace rows. Only counts while the app's FACE_SIGNIN is on.
    face_signin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The login session this object was loaded through (set by webapp.login_sessions); not a
    # column, so a type comment: SQLAlchemy would try to map an annotation.
    login_token = None  # type: str | None

    def __repr__(self) -> str:
        return f"<User {self.id} {self.username!r} {self.role}>"

    @property
    def is_admin(self) -> bool:
        """Tell whether the user may do everything (manage users, cameras, the hub)."""
        return self.role == ROLE_ADMIN

    @property
    def is_active(self) -> bool:  # flask-login refuses inactive users
        """Tell whether the account may log in."""
        return bool(self.active)

    def get_id(self) -> str | None:
        """Return the id flask-login keeps in the cookies: the token of the login session."""
        # Not the user id: a cookie then names one server-side session, which logout revokes.
        return self.login_token

    def set_password(self, password: str, keep_session: str | None = None) -> None:
        """Hash ``password`` with argon2id and end the user's sessions (but ``keep_session``)."""
        self.password_hash = password_hasher().hash(password)
        self.end_sessions(keep=keep_session)

    def check_password(self, password: str) -> bool:
        """Tell whether ``password`` is the user's; upgrades an outdated hash in place."""
        hasher = password_hasher()
        try:
            hasher.verify(self.password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        if hasher.check_needs_rehash(self.password_hash):
            self.password_hash = hasher.hash(password)
        return True

    def end_sessions(self, keep: str | None = None) -> None:
        """Revoke every login session (and so remember-me cookie) of this user but ``keep``,
        and every stream link the user made (``keep`` or not: a link is no session)."""
        self.stream_link_epoch = (self.stream_link_epoch or 0) + 1
        session = object_session(self)
        if session is None or self.id is None:
            return  # not stored yet: no session can name it
        query = (update(LoginSession)
                 .where(LoginSession.user_id == self.id, LoginSession.revoked_at.is_(None))
                 .values(revoked_at=utcnow()))
        if keep is not None:
            query = query.where(LoginSession.id != hash_session_token(keep))
        session.execute(query)

    def new_api_token(self, now: dt.datetime) -> str:
        """Create a new API token (replacing any old one) and return it; only its hash is kept."""
        token = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
        self.api_token_hash = hash_api_token(token)
        self.api_token_created_at = now
        return token

    def revoke_api_token(self) -> None:
        """Forget the user's API token, so it no longer authenticates."""
        self.api_token_hash = None
        self.api_token_created_at = None


def hash_session_token(token: str) -> str:
    """Return the stored id of a login session token (SHA-256: the token is 256 random bits)."""
    # A copy of the users database must not be a stack of live cookies.
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


class LoginSession(UsersBase):
    """A login of one user in one browser; its token is in the session and remember cookies."""

    __tablename__ = "login_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # hash_session_token(token)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # Absolute end: PERMANENT_SESSION_LIFETIME, or REMEMBER_COOKIE_DURATION with "remember me".
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    remember: Mapped[bool] = mapped_column(Boolean, default=False)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    address: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(USER_AGENT_MAX), default="")


class LoginCounter(UsersBase):
    """Password checks of one throttle key ("addr:IP", "pair:NAME|IP", "acct:NAME") in a window."""

    __tablename__ = "login_counters"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    # Accounts under attack: the next moment a check from an unknown address may run.
    next_check_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class KnownAddress(UsersBase):
    """An address a user logged in from: exempt from the slowdown of their attacked account."""

    __tablename__ = "login_known_addresses"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_login_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)


class UserFace(UsersBase):
    """One embedding of a user's face, taken at face sign-in enrollment (never the picture)."""

    __tablename__ = "user_faces"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    embedding: Mapped[bytes] = mapped_column(LargeBinary(EMBEDDING_BYTES))  # embedding_to_bytes
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


def burn_password_check(password: str) -> None:
    """Spend the time of one password check, so unknown usernames answer as slowly as known ones."""
    hasher = password_hasher()
    dummy = _dummy_hash(hasher.time_cost, hasher.memory_cost, hasher.parallelism)
    try:
        hasher.verify(dummy, password)
    except VerificationError:
        pass


@lru_cache(maxsize=4)
def _dummy_hash(time_cost: int, memory_cost: int, parallelism: int) -> str:
    hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)
    return hasher.hash(secrets.token_hex(16))
