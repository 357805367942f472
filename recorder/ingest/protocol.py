"""Ingest protocol version 2: the request-head fields and the ndjson acknowledgements.

See docs/design/protocol.md, "Version 2". Pure functions and one small progress object:
no I/O here, so the wire format can be tested on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import dataclasses
import json
import math
import re
from collections.abc import Mapping

from recorder.errors import IngestRejected

PTS_HZ = 90000  # MPEG-TS clock: durable_pts is always a whole number of these ticks
TICK = 1 / PTS_HZ
MAX_SPOOL_DROPPED = 10 * 365 * 86400.0  # more than ten years of dropped footage is a bug
ACK_CONTENT_TYPE = "application/x-ndjson"
_BACKFILL_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")


@dataclasses.dataclass(frozen=True)
class ProtocolFields:
    """The version-2 fields of a request head (defaults: a version-1 live request)."""

    version: int = 1
    mode: str = "live"  # live | backfill
    backfill_id: str | None = None
    spool_dropped: float = 0.0  # seconds the edge's spool dropped since its last report
    spool: bool = False  # the edge has a spool: a gap will be back-filled

    @property
    def acks(self) -> bool:
        """Tell whether the edge asked for acknowledgements (the early ndjson response)."""
        return self.version >= 2

    @property
    def direct(self) -> bool:
        """Tell whether the edge's socket goes straight to ffmpeg (version 3, "direct")."""
        return self.version >= 3

    @property
    def backfill(self) -> bool:
        """Tell whether the request uploads spooled footage rather than the live stream."""
        return self.mode == "backfill"


def parse_fields(headers: Mapping[str, str], epoch: float | None) -> ProtocolFields:
    """Read and check the version-2 headers (lower-cased names), or raise IngestRejected(400)."""
    version = _version(headers.get("x-nvr-protocol"))
    mode = headers.get("x-nvr-mode", "live").strip().lower() or "live"
    if mode not in ("live", "backfill"):
        raise IngestRejected(400, f"unknown X-NVR-Mode {mode[:20]!r}; use live or backfill")
    if mode == "backfill" and version < 2:
        raise IngestRejected(400, "X-NVR-Mode: backfill needs X-NVR-Protocol: 2")
    spool = _spool(headers.get("x-nvr-spool"))
    fields = ProtocolFields(version=version, mode=mode, spool=spool,
                            backfill_id=_backfill_id(headers.get("x-nvr-backfill-id"), mode),
                            spool_dropped=_spool_dropped(headers.get("x-nvr-spool-dropped"), mode))
    if version >= 2 and epoch is None:
        raise IngestRejected(400, f"X-NVR-Protocol: {version} needs X-NVR-Stream-Epoch (acks "
                                  "are in PTS)")
    if version >= 3 and mode != "live":
        raise IngestRejected(400, "X-NVR-Protocol: 3 is for the live stream; back-fill with 2")
    return fields


def _version(raw: str | None) -> int:
    if raw is None:
        return 1
    if raw.strip() not in ("1", "2", "3"):
        raise IngestRejected(400, f"unsupported X-NVR-Protocol {raw.strip()[:20]!r}; this hub "
                                  "speaks 1, 2 and 3")
    return int(raw.strip())


def _spool(raw: str | None) -> bool:
    if raw is None:
        return False
    if raw.strip() not in ("0", "1"):
        raise IngestRejected(400, "X-NVR-Spool must be 0 or 1")
    return raw.strip() == "1"


def _backfill_id(raw: str | None, mode: str) -> str | None:
    if mode != "backfill":
        if raw is not None:
            raise IngestRejected(400, "X-NVR-Backfill-Id is only for X-NVR-Mode: backfill")
        return None
    if raw is None or not _BACKFILL_ID_RE.fullmatch(raw.strip()):
        raise IngestRejected(400, "a backfill needs X-NVR-Backfill-Id of 1-64 characters "
                                  "[A-Za-z0-9._-]")
    return raw.strip()


def _spool_dropped(raw: str | None, mode: str) -> float:
    if raw is None:
        return 0.0
    if mode != "live":
        raise IngestRejected(400, "X-NVR-Spool-Dropped is only for live requests")
    try:
        seconds = float(raw)
    except ValueError:
        raise IngestRejected(400, "X-NVR-Spool-Dropped must be seconds (a number)") from None
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_SPOOL_DROPPED:
        raise IngestRejected(400, "X-NVR-Spool-Dropped must be 0 or more seconds")
    return seconds


# -- acknowledgements ------------------------------------------------------------------------

def snap_to_tick(seconds: float) -> float:
    """Round seconds to the nearest 90 kHz tick (ffmpeg prints 6 decimals; a tick is 11.1 µs)."""
    return round(seconds * PTS_HZ) / PTS_HZ


def encode_ack(durable_pts: float) -> bytes:
    """One ack line: every byte of the request with PTS < durable_pts is durable."""
    return _line({"durable_pts": snap_to_tick(durable_pts)})


def encode_done(segments: int, size: int, durable_pts: float | None) -> bytes:
    """The last line after a clean end of the body: everything the request carried is durable."""
    pts = None if durable_pts is None else snap_to_tick(durable_pts)
    return _line({"done": True, "segments": segments, "bytes": size, "durable_pts": pts})


def encode_closed(reason: str) -> bytes:
    """The last line when the hub ends the stream: nothing after the last ack is durable."""
    return _line({"closed": reason})


def encode_live(watched: bool) -> bytes:
    """Version 3's hint: someone watches (send each frame at once) or no longer does (batch)."""
    return _line({"live": watched})


def _line(obj: dict[str, object]) -> bytes:
    return (json.dumps(obj, separators=(",", ":"), allow_nan=False) + "\n").encode()


@dataclasses.dataclass(frozen=True)
class Ack:
    """A decoded ack line (``done`` and ``closed`` lines are Ack with those fields set)."""

    durable_pts: float | None = None
    done: bool = False
    segments: int | None = None
    size: int | None = None
    closed: str | None = None
    live: bool | None = None  # a version-3 hint line, not an ack


def decode_line(line: bytes | str) -> Ack:
    """Parse one ndjson ack line; raise ValueError if it is not one the protocol defines."""
    obj = json.loads(line)
    if not isinstance(obj, dict):
        raise ValueError("an ack line is a JSON object")
    if "closed" in obj:
        return Ack(closed=str(obj["closed"]))
    if isinstance(obj.get("live"), bool):
        return Ack(live=obj["live"])
    pts = obj.get("durable_pts")
    if pts is not None and not isinstance(pts, (int, float)):
        raise ValueError("durable_pts must be a number or null")
    if obj.get("done") is True:
        return Ack(durable_pts=pts, done=True, segments=int(obj["segments"]),
                   size=int(obj["bytes"]))
    if pts is None:
        raise ValueError(f"not an ack line: {str(line)[:80]!r}")
    return Ack(durable_pts=float(pts))


class DurableProgress:
    """How far one request's footage is durable; the hub advances it, the ack writer reads it.

    Acks never pass a loss: once the request's ffmpeg died or bytes were dropped, the hub
    cannot vouch for what follows, so the progress freezes and the request ends "closed"
    rather than "done" (the edge then keeps the rest and uploads it again as backfill).
    """

    def __init__(self) -> None:
        self.durable_pts: float | None = None
        self.frozen: str | None = None  # why acks stopped advancing
        self.ends_request = False  # ... and whether that ended the request
        self.on_freeze: list[Callable[[str], None]] = []  # the connection ends its request
        self._changed = asyncio.Event()

    def advance(self, durable_pts: float) -> None:
        """Record that every byte with PTS < durable_pts (request timeline) is durable."""
        if self.frozen is not None:
            return
        pts = snap_to_tick(durable_pts)
        if self.durable_pts is None or pts > self.durable_pts:
            self.durable_pts = pts
            self._changed.set()

    def freeze(self, reason: str, end_request: bool = True) -> None:
        """Stop advancing: footage after the current point may be lost.

        ``end_request``: the request is over (its recorder restarted), so the edge should open
        a new one at once. Otherwise it records on without acks, and the edge gives up on the
        request by its own ack timeout (a sender that starts requests where no demuxer can).
        """
        if self.frozen is None:
            self.frozen = reason
            self.ends_request = end_request
            if end_request:
                for listener in self.on_freeze:
                    listener(reason)

    async def changed(self) -> float | None:
        """Wait until durable_pts advanced, then return it."""
        await self._changed.wait()
        self._changed.clear()
        return self.durable_pts
