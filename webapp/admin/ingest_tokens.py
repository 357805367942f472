"""Per-camera ingest tokens in the catalog: made here, shown once, revoked here.

Only a token's SHA-256 is stored (nvrlib.catalog.models.IngestToken); the hub reads the
active ones every second, so a revoked token stops working within about a second.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from nvrlib.catalog.models import IngestToken

from .. import hub_storage
from ..extensions import db
from ..security import now

logger = logging.getLogger(__name__)


def list_tokens() -> list[IngestToken]:
    """Every token, active ones first, newest first."""
    return list(db.session.scalars(select(IngestToken).order_by(
        IngestToken.revoked_at.is_not(None), IngestToken.camera, IngestToken.created_at.desc())))


def create_token(camera: str, note: str, user: str) -> str:
    """Store a new token for ``camera`` (a validated name) and return it, for showing once."""
    row, token = IngestToken.issue(camera, user, note)
    row.created_at = now()
    db.session.add(row)
    db.session.commit()
    hub_storage.nudge_hubs()  # the hub that records the camera takes it at once
    logger.info("ingest token %d for camera %s made by %s", row.id, camera, user)
    return token


def revoke_token(token_id: int, user: str) -> IngestToken | None:
    """Revoke a token (once); return it, or None if there is no such token."""
    row = db.session.get(IngestToken, token_id)
    if row is None:
        return None
    if row.revoked_at is None:
        row.revoked_at, row.revoked_by = now(), user
        db.session.commit()
        hub_storage.nudge_hubs()  # its streams are closed now, not at the next safety poll
        logger.info("ingest token %d for camera %s revoked by %s", row.id, row.camera, user)
    return row
