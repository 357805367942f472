"""Per-camera ingest tokens from the catalog (made in the admin panel), cached for the hub.

The hub checks a token on every connection without the database: the cache is refreshed
when the web app nudges the hub after making or revoking a token (nvrlib/control_mark.py),
when a connection brings a token the cache does not know (at most once a second), and by
the control loop's safety poll. A revoked token stops opening connections, and the
connections it opened are closed (Hub._take_tokens).
"""

from __future__ import annotations

import hmac
import logging
from sqlalchemy import Engine, select

from nvrlib.catalog.models import IngestToken

logger = logging.getLogger(__name__)


_ACTIVE = select(IngestToken.camera, IngestToken.token_hash).where(IngestToken.revoked_at.is_(None))


def load_active(engine: Engine) -> dict[str, tuple[str, ...]]:
    """Every camera's unrevoked token hashes (on the catalog thread)."""
    active: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for camera, token_hash in conn.execute(_ACTIVE):
            active.setdefault(camera, []).append(token_hash)
    return {camera: tuple(hashes) for camera, hashes in active.items()}


class TokenCache:
    """The catalog's active ingest tokens, by camera."""

    def __init__(self) -> None:
        self.active: dict[str, tuple[str, ...]] = {}

    def replace(self, active: dict[str, tuple[str, ...]]) -> None:
        """Take a fresh load_active() result."""
        self.active = active

    def has_tokens(self, camera: str) -> bool:
        """Tell whether an admin made (unrevoked) tokens for ``camera``."""
        return bool(self.active.get(camera))

    def match(self, camera: str, token: str | None) -> str | None:
        """Return the stored hash ``token`` matches for ``camera`` (constant time), or None."""
        if token is None:
            return None
        given = IngestToken.hash_of(token)
        found = None
        for stored in self.active.get(camera, ()):  # every one compared: no early exit
            if hmac.compare_digest(given, stored):
                found = stored
        return found

    def is_active(self, camera: str, token_hash: str) -> bool:
        """Tell whether a hash a connection was admitted with is still unrevoked."""
        return token_hash in self.active.get(camera, ())
