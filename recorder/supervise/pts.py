"""Read PES timestamps straight from MPEG-TS bytes, cheaply, to learn where a stream's clock is.

The segmenter starts each pushed run of ffmpeg with the stream's clock shifted back near zero
(`ffmpeg.push_segmenter_argv`, ``pts_offset``), because ffmpeg 5.1's segment muxer cuts when
``pts >= segment_time * (count + 1)`` with ``count`` starting at 0 in every process: a stream
whose PTS are already 1500 s in would be cut at every keyframe until the count caught up. This
module finds the PTS it needs without a demuxer: only packets that start a PES are looked at,
and only as many as it takes to find one video PES (stream id 0xE0-0xEF).
"""

from __future__ import annotations

TS_PACKET = 188
SYNC = 0x47
PTS_HZ = 90_000
PTS_WRAP = 1 << 33
_VIDEO_IDS = range(0xE0, 0xF0)


def _aligned(data: bytes | memoryview, pos: int) -> bool:
    # A sync byte at pos and at the next packet (or the end): one stray 0x47 is not enough.
    if data[pos] != SYNC:
        return False
    following = pos + TS_PACKET
    return following >= len(data) or data[following] == SYNC


def first_aligned(data: bytes | memoryview, start: int = 0) -> int | None:
    """Return the offset of the first whole TS packet at or after ``start``, if any."""
    for pos in range(start, len(data) - TS_PACKET + 1):
        if _aligned(data, pos):
            return pos
    return None


def last_aligned(data: bytes | memoryview) -> int | None:
    """Return the offset of the last whole TS packet of ``data``, if any."""
    last = len(data) - TS_PACKET
    for pos in range(last, max(last - TS_PACKET, -1), -1):
        # the packet before must line up too, unless this one is the very first
        if data[pos] == SYNC and (pos < TS_PACKET or data[pos - TS_PACKET] == SYNC):
            return pos
    return None


def pes_pts(packet: bytes | memoryview) -> tuple[int, int] | None:
    """Return (stream id, PTS in 90 kHz ticks) if this TS packet starts a PES that has a PTS."""
    if len(packet) < TS_PACKET or packet[0] != SYNC or packet[1] & 0x80:
        return None  # not a packet, or the transport error indicator is set
    if not packet[1] & 0x40:
        return None  # no payload_unit_start_indicator: a PES continues here
    control = (packet[3] >> 4) & 0x3
    if not control & 0x1:
        return None  # adaptation field only, no payload
    start = 4
    if control & 0x2:
        start = 5 + packet[4]
    pes = packet[start:TS_PACKET]
    if len(pes) < 14 or pes[0] != 0 or pes[1] != 0 or pes[2] != 1:
        return None
    if not pes[7] & 0x80:
        return None  # PTS_DTS_flags say no PTS
    return pes[3], _decode_pts(pes[9:14])


def _decode_pts(raw: bytes | memoryview) -> int:
    return (((raw[0] >> 1) & 0x7) << 30 | raw[1] << 22 | (raw[2] >> 1) << 15
            | raw[3] << 7 | raw[4] >> 1)


def last_video_pts(data: bytes | memoryview) -> int | None:
    """Return the PTS (ticks) of the last video PES that starts in ``data``, if one does.

    Walks back from the end, so the cost is one frame's packets, not the whole batch.
    """
    view = memoryview(data)
    pos = last_aligned(view)
    while pos is not None and pos >= 0:
        found = pes_pts(view[pos:pos + TS_PACKET])
        if found is not None and found[0] in _VIDEO_IDS:
            return found[1]
        if pos >= TS_PACKET and view[pos - TS_PACKET] != SYNC:
            return None  # lost the packet grid: give up rather than guess
        pos -= TS_PACKET
    return None


def first_video_pts(data: bytes | memoryview, limit: int = 1 << 20) -> int | None:
    """Return the PTS (ticks) of the first video PES that starts in the first ``limit`` bytes."""
    view = memoryview(data)[:limit]
    pos = first_aligned(view)
    while pos is not None and pos + TS_PACKET <= len(view):
        found = pes_pts(view[pos:pos + TS_PACKET])
        if found is not None and found[0] in _VIDEO_IDS:
            return found[1]
        pos += TS_PACKET
        if pos < len(view) and view[pos] != SYNC:
            pos = first_aligned(view, pos)  # garbage between packets: find the grid again
    return None


def seconds(ticks: int) -> float:
    """Convert 90 kHz ticks to seconds."""
    return ticks / PTS_HZ
