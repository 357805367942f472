"""Outages: the spans a camera was not recording, and why (runs on the hub's catalog thread)."""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import select

from nvrlib.catalog.models import Camera, CameraStatus, Outage
from nvrlib.redact import redact
from recorder.store.catalog import Catalog

# Outages an admin or the hub's own stop caused: kept for the timeline, never emailed.
# "restarted": the hub restarted a v2 edge's recorder and ended its request; the edge is back
# within a second and back-fills the gap from its spool.
QUIET_REASONS = frozenset({"disconnected", "disabled", "hub_stopped", "restarted"})


@dataclasses.dataclass(frozen=True)
class OutageInfo:
    """An outage as the hub tracks it in memory."""

    camera: str
    started_at: dt.datetime
    reason: str
    detail: str = ""
    ended_at: dt.datetime | None = None

    @property
    def seconds(self) -> float:
        """The outage's length so far (or in all, once it ended)."""
        if self.ended_at is None:
            return 0.0
        return max((self.ended_at - self.started_at).total_seconds(), 0.0)


def open_outage(catalog: Catalog, camera: str, reason: str, detail: str,
                at: dt.datetime) -> OutageInfo | None:
    """Open an outage for a camera; return the open one, or None if the camera has no row."""
    with catalog.sessions.begin() as session:
        camera_id = session.scalar(select(Camera.id).where(Camera.name == camera))
        if camera_id is None:
            return None
        existing = session.scalar(select(Outage).where(Outage.camera_id == camera_id,
                                                       Outage.ended_at.is_(None)))
        if existing is not None:  # one open outage per camera: the first cause is the true one
            return _info(camera, existing)
        # an ffmpeg error names the camera URL: what the Events page shows keeps no secret
        row = Outage(camera_id=camera_id, started_at=at, reason=reason,
                     detail=redact(detail)[:2000])
        session.add(row)
        return _info(camera, row)


def close_outage(catalog: Catalog, camera: str, at: dt.datetime) -> OutageInfo | None:
    """Close a camera's open outage; return it (with its end), or None if none was open."""
    with catalog.sessions.begin() as session:
        row = session.scalar(select(Outage).join(Camera).where(Camera.name == camera,
                                                               Outage.ended_at.is_(None)))
        if row is None:
            return None
        row.ended_at = max(at, row.started_at)
        return _info(camera, row)


def open_outages(catalog: Catalog) -> dict[str, OutageInfo]:
    """Every open outage of this hub's cameras, by camera name."""
    with catalog.session() as session:
        rows = session.execute(select(Camera.name, Outage).join(Outage.camera)
                               .where(Camera.hub_id == catalog.hub_id,
                                      Outage.ended_at.is_(None))).all()
    return {name: _info(name, row) for name, row in rows}


def open_outages_after_crash(catalog: Catalog, at: dt.datetime) -> list[str]:
    """Open a 'hub_stopped' outage for cameras the last hub left marked online (it died).

    A hub that stops cleanly opens these itself; one that was killed left its cameras'
    status rows saying "online", and their footage stops at the crash.
    """
    opened = []
    with catalog.session() as session:
        rows = session.execute(select(Camera.name, CameraStatus.updated_at)
                               .join(CameraStatus.camera).where(
                                   Camera.hub_id == catalog.hub_id,
                                   CameraStatus.online.is_(True))).all()
    for name, last_alive in rows:
        if open_outage(catalog, name, "hub_stopped", "the hub stopped unexpectedly",
                       min(last_alive, at)) is not None:
            opened.append(name)
    return opened


def _info(camera: str, row: Outage) -> OutageInfo:
    return OutageInfo(camera=camera, started_at=row.started_at, reason=row.reason,
                      detail=row.detail or "", ended_at=row.ended_at)
