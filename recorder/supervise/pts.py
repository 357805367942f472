"""Read PES timestamps straight from MPEG-TS bytes, cheaply, to learn where a stream's clock is.

The segmenter starts each pushed run of ffmpeg with the stream's clock shifted back near zero
(`ffmpeg.push_segmenter_argv`, ``pts_offset``), because ffmpeg 5.1's segment muxer cuts when
``pts >= segment_time * (count + 1)`` with ``count`` starting at 0 in every process: a stream
whose PTS are already 1500 s in would be cut at every keyframe until the count caught up. This
module finds the PTS it needs without a demuxer: only packets that start a PES or a PSI section
are looked at. `StartFinder` finds where a new ffmpeg's output will begin (its first keyframe),
which is the PTS the shift must be taken from.
"""

from __future__ import annotations

import dataclasses

TS_PACKET = 188
SYNC = 0x47
PTS_HZ = 90_000
PTS_WRAP = 1 << 33
_VIDEO_IDS = range(0xE0, 0xF0)
PAT_PID = 0
_H264, _HEVC = 0x1B, 0x24  # PMT stream_type
_H264_KEY_NALS = frozenset({5, 7})  # IDR slice, SPS (sent right before an IDR)
_HEVC_KEY_NALS = frozenset({16, 17, 18, 19, 20, 21, 32, 33})  # IRAP slices, VPS, SPS


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


@dataclasses.dataclass(frozen=True)
class StartPoint:
    """Where a new demuxer should start reading a stream, and the PTS of the first frame it keeps."""

    offset: int  # of a PAT packet, in bytes from the start of what the finder was fed
    pts: int  # 90 kHz ticks of the first video keyframe after that PAT and its PMT


class StartFinder:
    """Scan MPEG-TS bytes, as they come, for the first point a new ffmpeg can start from cleanly.

    That point is a PAT, then a PMT it names, then the PES start of a video keyframe: ffmpeg's
    demuxer ignores every PES until it has read a PAT and its PMT, and ``-c copy`` drops the
    video frames before the first keyframe, so that keyframe is the first frame ffmpeg writes.
    A keyframe is a PES start with the random access indicator (libavformat, GStreamer and most
    cameras set it), or one whose first bytes hold an H.264 IDR/SPS or HEVC IRAP/VPS/SPS unit.
    """

    def __init__(self, every: bool = False) -> None:
        # every: scan on and collect each start point in ``found`` (``start`` stays None)
        self.found: list[StartPoint] | None = [] if every else None
        self._tail = b""  # bytes after the last whole packet scanned
        self._base = 0  # stream offset of self._tail[0]
        self._pmt_pids: set[int] = set()
        self._stream_types: dict[int, int] = {}  # elementary PID -> PMT stream_type
        self._pat_at: int | None = None  # offset of the last PAT
        self._ready_at: int | None = None  # offset of a PAT whose PMT followed
        self.first_pts: int | None = None  # of the first video PES seen, keyframe or not
        self.last_pts: int | None = None
        self.start: StartPoint | None = None

    def feed(self, data: bytes | memoryview) -> StartPoint | None:
        """Scan the next bytes of the stream; return the start point once it is found."""
        if self.start is not None:
            return self.start
        buf = self._tail + bytes(data)
        view = memoryview(buf)
        pos = 0
        while self.start is None and pos + TS_PACKET <= len(buf):
            if buf[pos] != SYNC:
                found = first_aligned(view, pos)  # garbage: find the packet grid again
                if found is None:
                    pos = len(buf) - TS_PACKET + 1  # the rest may begin a packet
                    break
                pos = found
                continue
            self._packet(view[pos:pos + TS_PACKET], self._base + pos)
            pos += TS_PACKET
        self._tail, self._base = buf[pos:], self._base + pos
        return self.start

    def searched(self) -> float:
        """Seconds of video PTS scanned so far without finding a start point."""
        if self.first_pts is None or self.last_pts is None:
            return 0.0
        return seconds((self.last_pts - self.first_pts) % PTS_WRAP)

    def _packet(self, packet: memoryview, offset: int) -> None:
        if packet[1] & 0x80 or not packet[1] & 0x40:
            return  # transport error, or no unit starts here
        pid = (packet[1] & 0x1F) << 8 | packet[2]
        payload = _payload(packet)
        if payload is None or not payload:
            return
        if pid == PAT_PID:
            self._pmt_pids.update(_pat_pmt_pids(payload))
            self._pat_at = offset
        elif pid in self._pmt_pids:
            if self._pat_at is not None:
                self._stream_types.update(_pmt_stream_types(payload))
                self._ready_at = self._pat_at
        else:
            self._pes(packet, pid, payload)

    def _pes(self, packet: memoryview, pid: int, payload: memoryview) -> None:
        found = pes_pts(packet)
        if found is None or found[0] not in _VIDEO_IDS:
            return
        self.last_pts = found[1]
        if self.first_pts is None:
            self.first_pts = found[1]
        known = not self._stream_types or pid in self._stream_types
        if self._ready_at is not None and known and \
                _is_keyframe(packet, payload, self._stream_types.get(pid)):
            point = StartPoint(self._ready_at, found[1])
            if self.found is None:
                self.start = point
            else:
                self.found.append(point)


def _payload(packet: memoryview) -> memoryview | None:
    control = (packet[3] >> 4) & 0x3
    if not control & 0x1:
        return None
    start = 5 + packet[4] if control & 0x2 else 4
    return packet[start:] if start < TS_PACKET else None


def _section(payload: memoryview) -> memoryview:
    # a PSI section after its pointer field, up to its end or the packet's (then it is cut)
    body = payload[1 + payload[0]:]
    if len(body) < 3:
        return body[:0]
    return body[:3 + ((body[1] & 0x0F) << 8 | body[2])]


def _pat_pmt_pids(payload: memoryview) -> list[int]:
    section = _section(payload)
    if len(section) < 12 or section[0] != 0x00:
        return []
    entries = section[8:len(section) - 4]  # CRC_32 last
    return [(entries[i + 2] & 0x1F) << 8 | entries[i + 3]
            for i in range(0, len(entries) - 3, 4)
            if entries[i] << 8 | entries[i + 1]]  # program 0 names the NIT, not a PMT


def _pmt_stream_types(payload: memoryview) -> dict[int, int]:
    section = _section(payload)
    if len(section) < 16 or section[0] != 0x02:
        return {}
    end = len(section) - 4
    pos = 12 + ((section[10] & 0x0F) << 8 | section[11])
    types = {}
    while pos + 5 <= end:
        types[(section[pos + 1] & 0x1F) << 8 | section[pos + 2]] = section[pos]
        pos += 5 + ((section[pos + 3] & 0x0F) << 8 | section[pos + 4])
    return types


def _is_keyframe(packet: memoryview, payload: memoryview, stream_type: int | None) -> bool:
    if packet[3] & 0x20 and packet[4] and packet[5] & 0x40:
        return True  # random_access_indicator
    if stream_type not in (_H264, _HEVC) or len(payload) < 9:
        return False
    elementary = bytes(payload[9 + payload[8]:])  # after the PES header
    pos = elementary.find(b"\x00\x00\x01")
    while 0 <= pos < len(elementary) - 3:
        head = elementary[pos + 3]
        if stream_type == _H264 and head & 0x1F in _H264_KEY_NALS:
            return True
        if stream_type == _HEVC and (head >> 1) & 0x3F in _HEVC_KEY_NALS:
            return True
        pos = elementary.find(b"\x00\x00\x01", pos + 3)
    return False


def seconds(ticks: int) -> float:
    """Convert 90 kHz ticks to seconds."""
    return ticks / PTS_HZ
