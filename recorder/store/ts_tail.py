"""The last presentation timestamp in an MPEG-TS file, read from the file's tail.

The ack of a segment must say exactly which frames it holds. ffmpeg's segment list gives
the last frame's PTS plus a *guessed* duration, which for a capture-clocked stream can lie
past the next segment's first frame; the PES headers at the end of the file do not.
"""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)

TS_PACKET = 188
PTS_HZ = 90000
WRAP = 1 << 33  # PTS is a 33-bit counter
_TAIL_SIZES = (64 * 1024, 1024 * 1024, 8 * 1024 * 1024)  # grow until a video PES header shows


def last_video_pts(path: Path) -> int | None:
    """Return the highest video PTS (raw 90 kHz ticks, 33 bits) in a file's tail, or None."""
    size = path.stat().st_size
    for tail in _TAIL_SIZES:
        start = max(size - tail, 0)
        start -= start % TS_PACKET  # our segments start on a packet boundary
        with path.open("rb") as handle:
            handle.seek(start)
            data = handle.read()
        found = _max_pts(data)
        if found is not None or start == 0:
            return found
    return None


def _max_pts(data: bytes) -> int | None:
    best: int | None = None
    for offset in range(0, len(data) - TS_PACKET + 1, TS_PACKET):
        pts = _packet_pts(data[offset:offset + TS_PACKET])
        if pts is not None and (best is None or _later(pts, best)):
            best = pts
    return best


def _later(a: int, b: int) -> bool:
    # within one file the PTS may wrap once: compare modulo 2^33
    return 0 < (a - b) % WRAP < WRAP // 2


def _packet_pts(packet: bytes) -> int | None:
    if packet[0] != 0x47 or not packet[1] & 0x40:  # no sync, or no PES starts here
        return None
    control = (packet[3] >> 4) & 0x3
    if not control & 0x1:
        return None  # adaptation field only
    payload = 4 + (1 + packet[4] if control & 0x2 else 0)
    pes = packet[payload:]
    if len(pes) < 14 or pes[:3] != b"\0\0\1" or not 0xE0 <= pes[3] <= 0xEF:
        return None  # not a video PES header
    if not pes[7] & 0x80:
        return None  # no PTS
    p = pes[9:14]
    return (((p[0] >> 1) & 0x7) << 30 | p[1] << 22 | (p[2] >> 1) << 15 | p[3] << 7 | p[4] >> 1)


def unwrap_near(raw_ticks: int, reference_seconds: float) -> float:
    """Place a raw 33-bit PTS on the unwrapped timeline ffmpeg lists, next to ``reference``."""
    reference = round(reference_seconds * PTS_HZ)
    delta = (raw_ticks - reference) % WRAP
    if delta >= WRAP // 2:
        delta -= WRAP
    return (reference + delta) / PTS_HZ
