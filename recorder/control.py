"""The control channel through the catalog database: status out, commands in (docs/design/control.md)."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable

from sqlalchemy import bindparam, insert, select, update

from nvrlib.catalog.models import Camera, CameraStatus, Command, utcnow
from recorder.ingest import tokens
from recorder.store.catalog import Catalog
from recorder.supervise.states import State

logger = logging.getLogger(__name__)

ACTIONS = ("restart", "disconnect", "enable", "disable", "reload")
COMMAND_MAX_AGE = dt.timedelta(minutes=5)  # older unexecuted commands are stale, not replayed


@dataclasses.dataclass
class StatusSample:
    """One camera's status as the hub sees it right now."""

    camera: str
    kind: str
    state: str
    online: bool
    pid: int | None
    peer: str
    connected_since: dt.datetime | None
    bytes_in: int
    frames: int
    bytes_written: int
    restarts: int
    last_segment_end: dt.datetime | None
    last_error: str


class RateMeter:
    """Turns ever-growing counters into per-second rates over a sliding window.

    ffmpeg reports its frame counter in steps and the relay hands bytes over in batches, so
    a rate over one 3-s status interval jumps around; RATE_WINDOW smooths that out.
    """

    RATE_WINDOW = 10.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._samples: dict[str, collections.deque[tuple[float, int, int]]] = {}

    def rates(self, camera: str, frames: int, bytes_in: int) -> tuple[float, float]:
        """Return (frames per second, bits per second) over about the last RATE_WINDOW s."""
        now = self.clock()
        samples = self._samples.setdefault(camera, collections.deque())
        samples.append((now, frames, bytes_in))
        while len(samples) > 2 and now - samples[1][0] >= self.RATE_WINDOW:
            samples.popleft()
        first = samples[0]
        elapsed = now - first[0]
        if elapsed <= 0 or frames < first[1]:
            if frames < first[1]:  # counters restarted (a new connection): start over
                samples.clear()
                samples.append((now, frames, bytes_in))
            return 0.0, 0.0
        return (frames - first[1]) / elapsed, max(bytes_in - first[2], 0) * 8 / elapsed


_STATUS = CameraStatus.__table__
# every status row is rewritten in one statement (an executemany), keyed by this parameter
_UPDATE_STATUS = _STATUS.update().where(_STATUS.c.camera_id == bindparam("b_camera_id"))


def publish_status(catalog: Catalog, samples: Iterable[StatusSample], meter: RateMeter) -> None:
    """Write every camera's status row (runs on the catalog thread).

    Plain rows and two statements rather than ORM objects: this runs every few seconds for
    every camera, and the ORM's per-row work was a visible share of the hub's CPU per stream.
    """
    now = utcnow()
    seen: set[int] = set()
    with catalog.engine.begin() as conn:
        # this hub's cameras only: another hub's rows are that hub's to write
        ids = dict(conn.execute(select(Camera.name, Camera.id)
                                .where(Camera.hub_id == catalog.hub_id)).all())
        rows = {row.camera_id: dict(row._mapping) for row in conn.execute(
            select(_STATUS).where(_STATUS.c.camera_id.in_(list(ids.values()))))}
        changed: list[dict[str, object]] = []
        added: list[dict[str, object]] = []
        for sample in samples:
            camera_id = ids.get(sample.camera)
            if camera_id is None:
                continue  # its row is created with its first run
            seen.add(camera_id)
            fps, bps = meter.rates(sample.camera, sample.frames, sample.bytes_in)
            row = rows.get(camera_id)
            (changed if row is not None else added).append(
                _status_row(row or {"camera_id": camera_id}, sample, fps, bps, now))
        if added:
            conn.execute(insert(_STATUS), added)
        # an executemany takes one set of columns: the gone rows change fewer
        for batch in (changed, _gone_rows(rows, set(ids.values()) - seen, now)):
            if batch:
                conn.execute(_UPDATE_STATUS, [{"b_camera_id": row.pop("camera_id"), **row}
                                              for row in batch])


def _status_row(old: dict[str, object], sample: StatusSample, fps: float, bps: float,
                now: dt.datetime) -> dict[str, object]:
    """The new values of a camera's status row, from its old values and a fresh sample."""
    was_online = bool(old.get("online"))
    row: dict[str, object] = {
        "camera_id": old["camera_id"], "state": sample.state, "online": sample.online,
        "kind": sample.kind, "pid": sample.pid, "peer": sample.peer, "bytes_in": sample.bytes_in,
        "frames": sample.frames, "bytes_written": sample.bytes_written,
        "restarts": sample.restarts, "last_error": sample.last_error[-2000:], "updated_at": now,
        "fps": round(fps, 2), "bitrate_bps": round(bps),
        "last_segment_end": sample.last_segment_end or old.get("last_segment_end"),
        "connected_since": ((old.get("connected_since") or sample.connected_since)
                            if sample.online else None),
        "offline_since": None if sample.online else old.get("offline_since"),
    }
    if sample.online and not was_online:
        row["connected_since"] = sample.connected_since or now
    if not sample.online and (was_online or row["offline_since"] is None):
        row["offline_since"] = now
    return row


def _gone_rows(rows: dict[int, dict[str, object]], camera_ids: set[int],
               now: dt.datetime) -> list[dict[str, object]]:
    """Status rows of cameras with no segmenter at all, now offline (an edge that went away,
    a disabled camera); rows already showing that are left alone."""
    gone = []
    for camera_id in camera_ids:
        row = rows.get(camera_id)
        if row is None or (not row["online"] and row["state"] == State.STOPPED.value):
            continue
        gone.append({"camera_id": camera_id, "online": False, "state": "stopped", "pid": None,
                     "fps": 0.0, "bitrate_bps": 0.0, "offline_since": now,
                     "connected_since": None, "updated_at": now})
    return gone


_ANY_PENDING = select(Command.id).where(Command.hub_id == bindparam("hub_id"),
                                       Command.done_at.is_(None)).limit(1)


@dataclasses.dataclass
class ControlPoll:
    """What one look at the catalog's control rows found."""

    tokens: dict[str, tuple[str, ...]]  # camera -> unrevoked ingest token hashes
    commands: list[Command]  # this hub's pending commands, oldest first


def poll(catalog: Catalog) -> ControlPoll:
    """Read the active ingest tokens and take this hub's pending commands, in one visit of the
    catalog thread (each visit wakes it: on a small machine that costs more than the reads)."""
    return ControlPoll(tokens.load_active(catalog.engine), take_commands(catalog))


def take_commands(catalog: Catalog) -> list[Command]:
    """Return this hub's pending commands, oldest first; stale ones are closed unexecuted."""
    with catalog.engine.connect() as conn:  # the usual answer, every second: nothing to do
        if conn.execute(_ANY_PENDING, {"hub_id": catalog.hub_id}).first() is None:
            return []
    now = utcnow()
    with catalog.sessions.begin() as session:
        pending = list(session.scalars(select(Command).where(Command.hub_id == catalog.hub_id,
                                                             Command.done_at.is_(None))
                                       .order_by(Command.id)))
        fresh = []
        for command in pending:
            if now - command.created_at > COMMAND_MAX_AGE:
                command.done_at, command.result = now, "expired: the hub was not running"
            else:
                fresh.append(command)
        session.expunge_all()
        return fresh


def finish_command(catalog: Catalog, command_id: int, result: str) -> None:
    """Record that a command was carried out, with its outcome."""
    with catalog.sessions.begin() as session:
        session.execute(update(Command).where(Command.id == command_id)
                        .values(done_at=utcnow(), result=result[:500]))


def set_enabled(catalog: Catalog, name: str, enabled: bool) -> bool:
    """Set a camera's enabled flag; return False if there is no such camera."""
    with catalog.sessions.begin() as session:
        camera = session.scalar(select(Camera).where(Camera.name == name))
        if camera is None:
            return False
        camera.enabled = enabled
        return True


def approve_pending(catalog: Catalog) -> list[str]:
    """Approve every camera still awaiting approval; return their names (run at hub start).

    With approval not required, pending means nothing: such a camera records like any other.
    Earlier hubs left cameras they admitted automatically as pending for ever (with
    Approve/Reject buttons, and never counted as offline); this brings them right.
    """
    with catalog.sessions.begin() as session:
        mine = (Camera.hub_id == catalog.hub_id, Camera.approval == "pending")
        names = list(session.scalars(select(Camera.name).where(*mine)))
        if names:
            session.execute(update(Camera).where(*mine).values(approval="approved"))
    if names:
        logger.info("approval is not required: approved %s", ", ".join(sorted(names)))
    return names


@dataclasses.dataclass(frozen=True)
class PullCamera:
    """A camera the hub should pull, from the config file or the database."""

    name: str
    location: str
    url: str


def database_pull_cameras(catalog: Catalog) -> list[PullCamera]:
    """Pulled cameras added in the web app for this hub that are enabled and approved."""
    with catalog.session() as session:
        rows = session.execute(select(Camera.name, Camera.location, Camera.url)
                               .where(Camera.hub_id == catalog.hub_id,
                                      Camera.url.is_not(None), Camera.enabled.is_(True),
                                      Camera.approval == "approved")).all()
    return [PullCamera(name, location or "", url) for name, location, url in rows]


def disabled_cameras(catalog: Catalog) -> set[str]:
    """Names of cameras disabled (or rejected) in the database."""
    with catalog.session() as session:
        return set(session.scalars(select(Camera.name).where(
            (Camera.enabled.is_(False)) | (Camera.approval == "rejected"))))


def other_hubs_cameras(catalog: Catalog) -> dict[str, str]:
    """Cameras that other hubs of the catalog record: name -> hub id (names are shared)."""
    with catalog.session() as session:
        return dict(session.execute(select(Camera.name, Camera.hub_id)
                                    .where(Camera.hub_id != catalog.hub_id)).all())
