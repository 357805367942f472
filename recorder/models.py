"""The recordings catalog: cameras, runs (one ffmpeg process each) and segments."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

UTC = dt.timezone.utc


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored in UTC and always read back as an aware UTC datetime."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        """Convert to UTC; SQLite keeps no zone, so store it naive there."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        """Attach UTC to what the database returns."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> dt.datetime:
    """Return the current time as an aware UTC datetime."""
    return dt.datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of the recordings catalog."""


class Camera(Base):
    """A camera the hub has recorded or is configured to record."""

    __tablename__ = "cameras"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    location: Mapped[str] = mapped_column(String(128), default="")
    kind: Mapped[str] = mapped_column(String(8), default="push")  # push | pull
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    first_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # RTSP URL of a pulled camera added from the web app (config-file cameras stay in the file)
    url: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    # approved | pending (connected for the first time, awaiting an admin) | rejected
    approval: Mapped[str] = mapped_column(String(16), default="approved", server_default="approved")

    runs: Mapped[list[Run]] = relationship(back_populates="camera")
    status: Mapped[CameraStatus | None] = relationship(back_populates="camera", uselist=False)


class Run(Base):
    """One ffmpeg segmenter process of a camera, and the clock mapping of its stream."""

    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    camera_id: Mapped[int] = mapped_column(ForeignKey("cameras.id"))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    end_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # wall-clock time of stream PTS ``anchor_pts`` (seconds); a NULL anchor_pts means
    # "the first PTS this run saw", filled in when its first segment is finished.
    anchor_wall: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    anchor_pts: Mapped[float | None] = mapped_column(Float, nullable=True)
    peer: Mapped[str] = mapped_column(String(128), default="")
    location: Mapped[str] = mapped_column(String(128), default="")

    camera: Mapped[Camera] = relationship(back_populates="runs")


class Segment(Base):
    """One finished, fsynced segment file of a camera."""

    __tablename__ = "segments"
    __table_args__ = (
        Index("ix_segments_camera_start", "camera_id", "start_time"),
        Index("ix_segments_start", "start_time"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    camera_id: Mapped[int] = mapped_column(ForeignKey("cameras.id"))
    run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id"), nullable=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    location: Mapped[str] = mapped_column(String(128), default="")
    start_time: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    end_time: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    duration: Mapped[float] = mapped_column(Float)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    path: Mapped[str] = mapped_column(String(512), unique=True)  # relative to the storage root
    codec: Mapped[str] = mapped_column(String(16), default="")
    width: Mapped[int] = mapped_column(Integer, default=0)
    height: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="ok")  # ok | missing
    recovered: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)

    camera: Mapped[Camera] = relationship()


class CameraStatus(Base):
    """The hub's live view of a camera, refreshed every few seconds (the control channel's out half)."""

    __tablename__ = "camera_status"

    camera_id: Mapped[int] = mapped_column(ForeignKey("cameras.id"), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default="stopped")
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    kind: Mapped[str] = mapped_column(String(8), default="push")
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    peer: Mapped[str] = mapped_column(String(128), default="")
    connected_since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    offline_since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    fps: Mapped[float] = mapped_column(Float, default=0.0)
    bitrate_bps: Mapped[float] = mapped_column(Float, default=0.0)
    bytes_in: Mapped[int] = mapped_column(BigInteger, default=0)
    frames: Mapped[int] = mapped_column(BigInteger, default=0)
    restarts: Mapped[int] = mapped_column(Integer, default=0)
    last_segment_end: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    camera: Mapped[Camera] = relationship(back_populates="status")


class Command(Base):
    """A request from the web app to the hub (the control channel's in half)."""

    __tablename__ = "commands"
    __table_args__ = (Index("ix_commands_pending", "done_at", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    camera: Mapped[str] = mapped_column(String(64))
    # restart | disconnect | enable | disable | reload
    action: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    done_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    result: Mapped[str] = mapped_column(Text, default="")
