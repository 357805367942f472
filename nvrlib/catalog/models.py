"""The recordings catalog: cameras, runs (one ffmpeg process each) and segments."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import (
    BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, String, Text,
    false, true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from nvrlib.names import DEFAULT_HUB

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
    # set by an admin in the web app: alerts about this camera are stored but not emailed until then
    alerts_muted_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # the hub that records it (hubs.id; "main" when a hub's config names none)
    hub_id: Mapped[str] = mapped_column(String(32), default=DEFAULT_HUB, server_default=DEFAULT_HUB)
    # motion detection, set in the web app and delivered to the camera's edge (or to the hub's
    # own detector for cameras without our edge); motion_updated_at tells a detector to reload
    motion_enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # 1 (only big, clear movement) .. 100 (the smallest change); 50 is the default
    motion_sensitivity: Mapped[int] = mapped_column(Integer, default=50, server_default="50")
    # JSON list of mask polygons, each a list of [x, y] in 0..1 of the frame: motion there is ignored
    motion_mask: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")
    motion_alerts: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    motion_updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # face recognition (docs/design/faces.md): an admin's switch sent to the edge with the
    # gallery, emails for unknown faces here (in the armed hours), and the last faces request of
    # its edge (the UI marks a camera "faces on" while that is recent)
    faces_enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    faces_unknown_alerts: Mapped[bool] = mapped_column(Boolean, default=False,
                                                       server_default=false())
    faces_seen_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)

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
    # push | pull | backfill (NULL: a run from before migration 0004)
    kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # the hub whose ffmpeg this was
    hub_id: Mapped[str] = mapped_column(String(32), default=DEFAULT_HUB, server_default=DEFAULT_HUB)

    camera: Mapped[Camera] = relationship(back_populates="runs")


class Segment(Base):
    """One finished, fsynced segment file of a camera."""

    __tablename__ = "segments"
    __table_args__ = (
        Index("ix_segments_camera_start", "camera_id", "start_time"),
        Index("ix_segments_start", "start_time"),
        Index("ix_segments_hub_start", "hub_id", "start_time"),
        # the timeline: a run's first and last playable segment in a range (catalog 0009)
        Index("ix_segments_run_status_start", "run_id", "status", "start_time", "end_time"),
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
    # ok | missing (the file is gone) | deleting (retention marked it; the file goes next)
    status: Mapped[str] = mapped_column(String(16), default="ok")
    recovered: Mapped[bool] = mapped_column(Boolean, default=False)
    # uploaded later from an edge's spool (X-NVR-Mode: backfill), placed in its true time slot
    backfilled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    # the hub whose storage holds the file (``path`` is relative to that hub's storage root)
    hub_id: Mapped[str] = mapped_column(String(32), default=DEFAULT_HUB, server_default=DEFAULT_HUB)

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
    bytes_written: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    frames: Mapped[int] = mapped_column(BigInteger, default=0)
    restarts: Mapped[int] = mapped_column(Integer, default=0)
    last_segment_end: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    camera: Mapped[Camera] = relationship(back_populates="status")


class Command(Base):
    """A request from the web app to the hub (the control channel's in half)."""

    __tablename__ = "commands"
    __table_args__ = (Index("ix_commands_pending", "done_at", "id"),
                      Index("ix_commands_hub_pending", "hub_id", "done_at", "id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    camera: Mapped[str] = mapped_column(String(64))
    # restart | disconnect | enable | disable | reload
    action: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    done_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    result: Mapped[str] = mapped_column(Text, default="")
    # the hub that must carry it out (the camera's hub; for ``reload``, the hub to reload)
    hub_id: Mapped[str] = mapped_column(String(32), default=DEFAULT_HUB, server_default=DEFAULT_HUB)


class Outage(Base):
    """A span of time a camera was not recording, and why (open while ``ended_at`` is NULL)."""

    __tablename__ = "outages"
    __table_args__ = (Index("ix_outages_camera_start", "camera_id", "started_at"),
                      Index("ix_outages_start", "started_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    camera_id: Mapped[int] = mapped_column(ForeignKey("cameras.id"))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # clean_shutdown | connection_lost | stalled | failing | disconnected | disabled | hub_stopped |
    # restarted
    reason: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")
    # seconds of the outage recovered later from the edge's spool (backfilled segments)
    backfilled_seconds: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    # seconds the edge's spool had to drop (X-NVR-Spool-Dropped): lost for good
    dropped_seconds: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")

    camera: Mapped[Camera] = relationship()


# Edges split motion events at 60 s: a report of a longer one is refused (the hub's ingest), and
# one without an end that started longer ago than this never ends (its edge died mid-event).
MAX_EVENT_SECONDS = 6 * 3600.0


class MotionEvent(Base):
    """A span of time a camera saw motion, reported by its edge (or the hub's own detector)."""

    __tablename__ = "motion_events"
    __table_args__ = (Index("ix_motion_camera_start", "camera_id", "start_time"),
                      Index("ix_motion_start", "start_time"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    camera_id: Mapped[int] = mapped_column(ForeignKey("cameras.id"))
    # the reporter's own id of the event (e.g. "<edge run>-<n>"): a spooled event sent twice is
    # stored once, and an event reported at its start is updated when it ends
    event_key: Mapped[str] = mapped_column(String(64), unique=True)
    start_time: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    end_time: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)  # NULL: going on
    score: Mapped[float] = mapped_column(Float, default=0.0)  # peak share of the frame that moved, 0..1
    # the bounding box of the motion at its peak, in 0..1 of the frame
    box_x: Mapped[float] = mapped_column(Float, default=0.0)
    box_y: Mapped[float] = mapped_column(Float, default=0.0)
    box_w: Mapped[float] = mapped_column(Float, default=0.0)
    box_h: Mapped[float] = mapped_column(Float, default=0.0)
    # a small JPEG at the peak, relative to the storage root of hub ``hub_id`` (NULL: none)
    snapshot_path: Mapped[str | None] = mapped_column(String(512), nullable=True)
    source: Mapped[str] = mapped_column(String(8), default="edge")  # edge | hub
    hub_id: Mapped[str] = mapped_column(String(32), default=DEFAULT_HUB, server_default=DEFAULT_HUB)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    camera: Mapped[Camera] = relationship()


class Person(Base):
    """Someone the face engine knows by name, from the samples an admin enrolled."""

    __tablename__ = "people"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    # name.casefold(): "alice" and "Alice" cannot both exist, whoever writes at the same moment
    name_key: Mapped[str] = mapped_column(String(64), unique=True)
    alert: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # feeds the gallery's ETag, so a rename reaches the edges
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64), default="")

    samples: Mapped[list[FaceSample]] = relationship(back_populates="person",
                                                     cascade="all, delete-orphan",
                                                     passive_deletes=True)


class FaceSample(Base):
    """One enrolled face of a person: its embedding and, for the page, its crop."""

    __tablename__ = "face_samples"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    embedding: Mapped[bytes] = mapped_column(LargeBinary(512))  # nvrlib.faces.embedding_to_bytes
    source: Mapped[str] = mapped_column(String(8), default="photo")  # photo | sighting
    # provenance only (no foreign key): the sighting may expire with its footage
    sighting_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # a 160-px JPEG of the face, in the row so it needs no retention and goes with the person
    crop: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64), default="")

    person: Mapped[Person] = relationship(back_populates="samples")


# An edge's debounce window is at most this long: a sighting longer than it is refused, and one
# without an end that started longer ago never ends (its edge died before its final report).
MAX_SIGHTING_SECONDS = 600.0


class FaceSighting(Base):
    """A face a camera saw over a debounce window: who (or unknown), where, and its crop."""

    __tablename__ = "face_sightings"
    __table_args__ = (Index("ix_face_camera_start", "camera_id", "start_time"),
                      Index("ix_face_start", "start_time"),
                      Index("ix_face_person_start", "person_id", "start_time"),
                      Index("ix_face_person_camera_start", "person_id", "camera_id", "start_time"),
                      Index("ix_face_erased", "erased_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # the edge's own id of the sighting: a spooled report sent twice is stored once, and the
    # final report (with the window's best face) replaces the first
    sighting_key: Mapped[str] = mapped_column(String(64), unique=True)
    camera_id: Mapped[int] = mapped_column(ForeignKey("cameras.id"))
    hub_id: Mapped[str] = mapped_column(String(32), default=DEFAULT_HUB, server_default=DEFAULT_HUB)
    start_time: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    end_time: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # the hub's match against its own gallery (NULL: unknown)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), nullable=True)
    distance: Mapped[float | None] = mapped_column(Float, nullable=True)  # NULL: empty gallery
    # the face's box in 0..1 of the frame
    box_x: Mapped[float] = mapped_column(Float, default=0.0)
    box_y: Mapped[float] = mapped_column(Float, default=0.0)
    box_w: Mapped[float] = mapped_column(Float, default=0.0)
    box_h: Mapped[float] = mapped_column(Float, default=0.0)
    face_size: Mapped[int] = mapped_column(Integer, default=0)  # the face's smaller side, pixels
    score: Mapped[float] = mapped_column(Float, default=0.0)  # HOG score
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary(512), nullable=True)
    # a JPEG of the face, relative to the storage root of hub ``hub_id`` (NULL: none or erased)
    crop_path: Mapped[str | None] = mapped_column(String(512), nullable=True)
    # set when its person is deleted: no face data is left, the row stays as a tombstone so a
    # late report of the same key from an edge's spool is not revived
    erased_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    camera: Mapped[Camera] = relationship()
    person: Mapped[Person | None] = relationship()


class Alert(Base):
    """One alert the hub raised (or the web app asked for), with its email delivery status."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_created", "created_at"),
                      Index("ix_alerts_delivery", "status", "next_attempt_at"),
                      Index("ix_alerts_camera_created", "camera", "created_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # new_camera | offline | online | failing | stalled | disk_low | disk_emergency |
    # locks_yielded | admin_locks_yielded | retention_short | summary | test
    kind: Mapped[str] = mapped_column(String(24))
    camera: Mapped[str | None] = mapped_column(String(64), nullable=True)  # a name: alerts outlive rows
    subject: Mapped[str] = mapped_column(String(255), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[str] = mapped_column(Text, default="{}")  # JSON object
    # pending | sent | failed (gave up) | logged (email is off) | muted | suppressed (debounced)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    recipients: Mapped[str] = mapped_column(Text, default="")  # comma-separated, filled when sent
    requested_by: Mapped[str] = mapped_column(String(64), default="")  # a web app user (test emails)


class RecordingLock(Base):
    """A time range of one camera (or of every camera) that retention must not delete."""

    __tablename__ = "locks"
    __table_args__ = (Index("ix_locks_camera_range", "camera_id", "start_time", "end_time"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    camera_id: Mapped[int | None] = mapped_column(ForeignKey("cameras.id"), nullable=True)  # NULL: all
    start_time: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    end_time: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    note: Mapped[str] = mapped_column(String(200), default="")  # the reason, required since 0006
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # made by an admin: in an emergency it yields only after every viewer lock has (health.md)
    admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # when emergency retention last deleted footage under this lock and moved its start forward
    yielded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # the start the lock was made with, kept once it has yielded (NULL: never shortened)
    original_start: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)

    camera: Mapped[Camera | None] = relationship()


class Setting(Base):
    """A setting changed at run time from the web app (``alerts.email_to``, ``locks.max_count``)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(64), default="")


class HubStatus(Base):
    """A hub's own heartbeat and health-check results (one row per hub), for health and metrics."""

    __tablename__ = "hub_status"
    __table_args__ = (Index("ix_hub_status_hub", "hub_id", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hub_id: Mapped[str] = mapped_column(String(32), default=DEFAULT_HUB, server_default=DEFAULT_HUB)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    stopped_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    disk_total_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    disk_free_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    footage_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    email_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # where the alert recipients came from: environment | web | config | none
    recipients_source: Mapped[str] = mapped_column(String(16), default="none")
    recipients: Mapped[str] = mapped_column(Text, default="")
    # JSON: {check name: {"ok": bool, "detail": str, "at": iso time}}
    checks: Mapped[str] = mapped_column(Text, default="{}")
    retention_deleted_segments: Mapped[int] = mapped_column(BigInteger, default=0)
    retention_deleted_bytes: Mapped[int] = mapped_column(BigInteger, default=0)


class Hub(Base):
    """A hub recording into this catalog: its id, and the storage it records into."""

    __tablename__ = "hubs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # the random id in <storage>/.nvr-storage (recorder/store/identity.py): one storage per hub
    storage_id: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    # the storage root as the hub sees it, and where it listens: for the web app and the pages
    storage_root: Mapped[str] = mapped_column(String(1024), default="", server_default="")
    listen: Mapped[str] = mapped_column(String(255), default="", server_default="")
    first_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_started: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class IngestToken(Base):
    """A per-camera ingest token made in the admin panel: only its SHA-256 is kept.

    A token is 32 random bytes, so a plain SHA-256 is enough: a password hash's slowness
    guards guessable secrets against a stolen table; nobody can guess 256 random bits, and
    the hub checks tokens on every connection, where a slow hash would only cost CPU.
    """

    __tablename__ = "ingest_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    camera: Mapped[str] = mapped_column(String(64), index=True)  # a name; it may not exist yet
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # hex SHA-256
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_by: Mapped[str] = mapped_column(String(64), default="")

    PREFIX = "nvr1_"  # tells a token in a config file or a log apart from other secrets

    @staticmethod
    def hash_of(token: str) -> str:
        """The hex SHA-256 stored for a token."""
        return hashlib.sha256(token.encode("utf-8")).hexdigest()

    @classmethod
    def issue(cls, camera: str, created_by: str, note: str = "") -> tuple[IngestToken, str]:
        """Make a new token for ``camera``: the row to store and the token to show once."""
        token = cls.PREFIX + secrets.token_urlsafe(32)
        return cls(camera=camera, token_hash=cls.hash_of(token), note=note,
                   created_by=created_by), token
