"""Face sign-in: an optional second step after the password (docs/design/faces.md, section 5).

Off unless the app's FACE_SIGNIN is on; then each user may enroll on /account/face: three
pictures, each holding exactly one face of at least MIN_FACE pixels, kept as embeddings only
(`UserFace`). A user with it on who gives the right password gets no session yet: the signed
Flask session holds a *pending* login (`begin`), and /auth/login/face starts the session once a
picture's face lies within THRESHOLD of one of the user's embeddings, within PENDING_SECONDS.

A photo of the user's face passes too: it is a second step after the password, never a
replacement for it (`WARNING`, shown on both pages).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
from flask import current_app, session
from sqlalchemy import delete, select

from nvrlib.faces import MATCH_THRESHOLD, distance, embedding_from_bytes, embedding_to_bytes
from nvrlib.faces import match as match_gallery

from .. import face_engine
from ..extensions import db
from ..models import User, UserFace
from ..security import now, safe_next

WARNING = ("A photo of your face can fool face sign-in. It is a second step after your "
           "password, never a replacement for it.")
THRESHOLD = 0.5  # stricter than the cameras' 0.6: a wrong "yes" here lets someone in
MIN_FACE = 80  # pixels: the HOG detector's own window; smaller faces embed poorly
ENROLL_PICTURES = 3
MAX_FACES_PER_USER = 5
PENDING_SECONDS = 120
PHOTO_MAX_BYTES = 2 * 1024 * 1024
PENDING_KEY = "face_pending"


class PictureProblem(ValueError):
    """A picture that cannot be compared (not an image, no face, two faces); says which."""


@dataclass(frozen=True)
class Pending:
    """A login waiting for its face: the user, and what the password step asked for."""

    user: User
    remember: bool
    next: str | None


def enabled() -> bool:
    """Tell whether the app offers face sign-in at all ([webapp] face_signin)."""
    return bool(current_app.config.get("FACE_SIGNIN"))


def required_for(user: User) -> bool:
    """Tell whether ``user`` must show their face after the password."""
    return enabled() and bool(user.face_signin)


def face_of(data: bytes, label: str = "The picture") -> np.ndarray:
    """Return the embedding of the one face (>= MIN_FACE px) in an uploaded picture."""
    try:
        image = face_engine.decode_photo(data)
    except face_engine.PhotoRefused as exc:
        raise PictureProblem(f"{label}: {exc}.") from None
    faces = face_engine.find(image, min_size=MIN_FACE)
    if not faces:
        raise PictureProblem(f"{label} shows no face (of at least {MIN_FACE} pixels): look "
                             "into the camera, closer, in good light.")
    if len(faces) > 1:
        raise PictureProblem(f"{label} shows {len(faces)} faces: only yours may be seen.")
    return faces[0].embedding


def embeddings_of(user: User) -> list[np.ndarray]:
    """Return the user's stored face embeddings."""
    rows = db.session.scalars(select(UserFace.embedding).where(UserFace.user_id == user.id))
    return [embedding_from_bytes(row) for row in rows]


def nearest(embedding: np.ndarray, user: User) -> float:
    """Return the distance from ``embedding`` to the nearest of the user's (inf: none stored)."""
    return match_gallery(embedding, {user.id: embeddings_of(user)}, THRESHOLD).distance


def check_one_person(embeddings: list[np.ndarray]) -> None:
    """Refuse enrollment pictures that do not look like one person (PictureProblem)."""
    for (i, a), (j, b) in itertools.combinations(enumerate(embeddings, 1), 2):
        if distance(a, b) > MATCH_THRESHOLD:
            raise PictureProblem(f"Pictures {i} and {j} do not look like the same person: "
                                 "take them again, only you in front of the camera.")


def enroll(user: User, embeddings: list[np.ndarray]) -> None:
    """Replace the user's embeddings with these and turn face sign-in on (commits)."""
    if not 1 <= len(embeddings) <= MAX_FACES_PER_USER:
        raise ValueError(f"1 to {MAX_FACES_PER_USER} embeddings, not {len(embeddings)}")
    check_one_person(embeddings)
    taken = now()
    db.session.execute(delete(UserFace).where(UserFace.user_id == user.id))
    db.session.add_all(UserFace(user_id=user.id, embedding=embedding_to_bytes(e), created_at=taken)
                       for e in embeddings)
    user.face_signin = True
    db.session.commit()


def turn_off(user: User) -> None:
    """Turn face sign-in off for ``user`` and delete their embeddings (commits)."""
    db.session.execute(delete(UserFace).where(UserFace.user_id == user.id))
    user.face_signin = False
    db.session.commit()


def begin(user: User, remember: bool, target: str | None) -> None:
    """Hold a login that passed its password until its face is shown (no session yet)."""
    session.clear()  # nothing from before the login survives it, as in start_session
    session[PENDING_KEY] = {"user": user.id, "at": now().timestamp(), "remember": remember,
                            "next": target, "epoch": user.stream_link_epoch or 0}


def pending() -> Pending | None:
    """Return the pending login of this browser, or None (none, expired, or no longer valid)."""
    held: Any = session.get(PENDING_KEY)
    if not isinstance(held, dict):
        return None
    try:
        age = now().timestamp() - float(held["at"])
        user = db.session.get(User, int(held["user"]))
    except (KeyError, TypeError, ValueError, OverflowError):
        return None
    # The epoch changes with a new password, "sign out everywhere" and disabling the account.
    if (user is None or not -60 <= age <= PENDING_SECONDS or not user.active
            or not required_for(user) or held.get("epoch") != (user.stream_link_epoch or 0)):
        return None
    target = held.get("next")
    return Pending(user, bool(held.get("remember")),
                   safe_next(target) if isinstance(target, str) else None)


def forget_pending() -> None:
    """Drop this browser's pending login (it expired, or its session started)."""
    session.pop(PENDING_KEY, None)

