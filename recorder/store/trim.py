"""Cut an interrupted MPEG-TS segment back to its longest prefix that decodes cleanly.

A segment left in ``.incoming`` by a crash can end in two kinds of damage:

* **torn at the TS level**: ffmpeg was killed mid-write, so the file ends in a partial 188-byte
  packet, possibly in the middle of a PES packet (a frame);
* **torn inside a whole PES**: the hub died, the segmenter ffmpeg read EOF on its stdin in the
  middle of a frame, and its demuxer flushed the partial frame, which the stream copy then
  wrote as a complete-looking PES packet.

``structural_end`` handles the first kind from the TS headers alone; ``trim_segment`` then
decodes every audio and video packet and cuts at the first one the decoder complains about
(an error message, a corrupt packet or frame), which catches the second kind. Every cut lands
on the first TS packet of a PES, so the file keeps every frame that was complete, and a file
that already decodes cleanly is left as it is (trimming is idempotent). The rules are in
docs/design/recording.md, "Cut a torn segment back".
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import av
import av.logging

logger = logging.getLogger(__name__)

PACKET_SIZE = 188
SYNC_BYTE = 0x47
PAT_PID = 0x0000
NULL_PID = 0x1FFF
PES_HEADER_SIZE = 6  # start code prefix (3), stream id (1), PES_packet_length (2)
# PMT stream types that carry video (ISO/IEC 13818-1 table 2-34 and later amendments)
VIDEO_STREAM_TYPES = {0x01, 0x02, 0x10, 0x1B, 0x24, 0x42, 0xD1, 0xEA}
MAX_PASSES = 3  # a cut at the decoder's first complaint is verified by decoding again


class TrimError(Exception):
    """The file holds no complete, cleanly decodable frame (or is not MPEG-TS video at all)."""


@dataclasses.dataclass(frozen=True)
class Program:
    """What the PAT and PMT say: the PMT's PID and each elementary stream's PID and type."""

    pmt_pid: int
    streams: dict[int, int]  # PID -> stream_type

    @property
    def video_pid(self) -> int | None:
        """The PID of the first video stream, if the PMT lists one."""
        return next((pid for pid, kind in self.streams.items() if kind in VIDEO_STREAM_TYPES), None)


@dataclasses.dataclass(frozen=True)
class TsPacket:
    """The header fields of one 188-byte transport packet that trimming needs."""

    offset: int
    pid: int
    unit_start: bool  # payload_unit_start_indicator: a PES or PSI section starts here
    payload: bytes


@dataclasses.dataclass(frozen=True)
class TrimResult:
    """What trimming did to one file."""

    size_before: int
    size_after: int
    frames: int  # video frames left, each decoded without complaint
    reason: str  # why bytes were cut; "" when the file was left as it was

    @property
    def trimmed(self) -> bool:
        """True when the file was cut shorter."""
        return self.size_after < self.size_before


def trim_segment(path: Path) -> TrimResult:
    """Cut ``path`` back to its longest cleanly decodable prefix, durably; raise TrimError.

    The file is changed only when at least one clean frame remains: a file with none is left
    untouched for the caller to quarantine.
    """
    data = path.read_bytes()
    result = plan_cut(data)
    if result.trimmed:
        _truncate_durably(path, result.size_after)
        logger.warning("%s: cut %d of %d bytes (%s)", path.name,
                       result.size_before - result.size_after, result.size_before, result.reason)
    return result


def plan_cut(data: bytes) -> TrimResult:
    """Decide how much of a segment's bytes to keep, without changing anything."""
    end, reason = structural_end(data)
    for _ in range(MAX_PASSES):
        scan = _scan(data[:end])
        if scan.first_damage is None:
            if scan.frames == 0:
                raise TrimError("no complete video frame")
            return TrimResult(len(data), end, scan.frames, reason)
        end = pes_start_at_or_before(data, scan.first_damage)
        reason = reason or f"the decoder rejected the packet at byte {scan.first_damage}"
    raise TrimError(f"still damaged after {MAX_PASSES} cuts")


def structural_end(data: bytes) -> tuple[int, str]:
    """Return (length to keep, reason) judged from the TS headers alone.

    Keeps the longest run of whole packets that start with the sync byte, then cuts every
    PES packet the end of the file provably tore: one whose PES_packet_length is not reached,
    or one whose next packet was cut short (the partial last packet names its PID).
    """
    whole = _sync_prefix(data)
    end, reason = whole, ""
    if whole < len(data):
        reason = "a partial or unsynchronised packet"
        torn_pid = _partial_packet_pid(data, whole)
        if torn_pid is not None:
            cut = _open_pes_start(data, whole, torn_pid)
            if cut is not None:
                end, reason = cut, "a frame torn by a partial packet"
    program = parse_program(data[:end])
    if program is None:
        return end, reason
    while True:
        torn = _torn_pes(data, end, program)
        if torn is None:
            return end, reason
        end, reason = torn, "a PES packet shorter than its length field"


def parse_program(data: bytes) -> Program | None:
    """Read the first PAT and the PMT it points to; None if the file holds neither."""
    pmt_pid = None
    for packet in iter_packets(data):
        section = _section(packet)
        if section is None:
            continue
        if packet.pid == PAT_PID and section[0] == 0x00 and pmt_pid is None:
            pmt_pid = _pmt_pid_from_pat(section)
        elif pmt_pid is not None and packet.pid == pmt_pid and section[0] == 0x02:
            return Program(pmt_pid, _streams_from_pmt(section))
    return None


def iter_packets(data: bytes, end: int | None = None) -> Iterator[TsPacket]:
    """Yield the whole, synchronised packets of ``data`` up to ``end``."""
    stop = _sync_prefix(data) if end is None else min(end, _sync_prefix(data))
    for offset in range(0, stop, PACKET_SIZE):
        yield _parse_packet(data, offset)


def pes_start_at_or_before(data: bytes, position: int) -> int:
    """Return the offset of the packet holding ``position``, at a packet boundary."""
    # the demuxer reports a PES's position as that of its first TS packet; round down anyway
    return max(0, min(position, _sync_prefix(data))) // PACKET_SIZE * PACKET_SIZE


# -- TS headers -----------------------------------------------------------------------------


def _sync_prefix(data: bytes) -> int:
    """Length of the leading run of whole packets that begin with the sync byte."""
    whole = len(data) // PACKET_SIZE * PACKET_SIZE
    for offset in range(0, whole, PACKET_SIZE):
        if data[offset] != SYNC_BYTE:
            return offset
    return whole


def _parse_packet(data: bytes, offset: int) -> TsPacket:
    header = data[offset:offset + 4]
    pid = ((header[1] & 0x1F) << 8) | header[2]
    control = (header[3] >> 4) & 0x3
    start = offset + 4
    if control & 0x2:  # adaptation field first
        start += 1 + data[start]
    payload = data[start:offset + PACKET_SIZE] if control & 0x1 else b""
    return TsPacket(offset, pid, bool(header[1] & 0x40), payload)


def _partial_packet_pid(data: bytes, whole: int) -> int | None:
    """The PID of the partial packet at ``whole``, if its header survived and is not a start."""
    tail = data[whole:whole + 4]
    if len(tail) < 3 or tail[0] != SYNC_BYTE or len(data) - whole >= PACKET_SIZE:
        return None
    if tail[1] & 0x40:
        return None  # it starts a new PES: dropping the partial packet is enough
    return ((tail[1] & 0x1F) << 8) | tail[2]


def _open_pes_start(data: bytes, end: int, pid: int) -> int | None:
    """Offset of the last packet before ``end`` that starts a PES on ``pid``."""
    last = None
    for packet in iter_packets(data, end):
        if packet.pid == pid and packet.unit_start:
            last = packet.offset
    return last


def _torn_pes(data: bytes, end: int, program: Program) -> int | None:
    """The earliest start of a PES packet that ``end`` cuts short of its length field."""
    starts: dict[int, int] = {}
    received: dict[int, int] = {}
    for packet in iter_packets(data, end):
        if packet.pid not in program.streams:
            continue
        if packet.unit_start:
            starts[packet.pid], received[packet.pid] = packet.offset, 0
        if packet.pid in starts:
            received[packet.pid] += len(packet.payload)
    torn = [start for pid, start in starts.items()
            if _pes_shortfall(data, start, received[pid]) > 0]
    return min(torn) if torn else None


def _pes_shortfall(data: bytes, start: int, received: int) -> int:
    """How many bytes the PES starting at ``start`` lacks (0 if complete or of unknown length)."""
    payload = _parse_packet(data, start).payload
    if len(payload) < PES_HEADER_SIZE or payload[:3] != b"\x00\x00\x01":
        return 0
    length = int.from_bytes(payload[4:6], "big")
    return max(0, PES_HEADER_SIZE + length - received) if length else 0


def _section(packet: TsPacket) -> bytes | None:
    """The PSI section that starts in this packet (after its pointer field), if any."""
    if not packet.unit_start or not packet.payload or packet.pid == NULL_PID:
        return None
    pointer = packet.payload[0]
    section = packet.payload[1 + pointer:]
    return section if len(section) >= 3 else None


def _section_body(section: bytes) -> bytes:
    """The bytes of a long-form section after its 8-byte header, without the CRC."""
    length = ((section[1] & 0x0F) << 8) | section[2]
    return section[8:3 + length - 4]


def _pmt_pid_from_pat(section: bytes) -> int | None:
    body = _section_body(section)
    for i in range(0, len(body) - 3, 4):
        program_number = int.from_bytes(body[i:i + 2], "big")
        if program_number != 0:  # 0 names the network PID, not a PMT
            return ((body[i + 2] & 0x1F) << 8) | body[i + 3]
    return None


def _streams_from_pmt(section: bytes) -> dict[int, int]:
    body = _section_body(section)
    if len(body) < 4:
        return {}
    info_length = ((body[2] & 0x0F) << 8) | body[3]
    streams, i = {}, 4 + info_length
    while i + 5 <= len(body):
        kind, pid = body[i], ((body[i + 1] & 0x1F) << 8) | body[i + 2]
        streams[pid] = kind
        i += 5 + (((body[i + 3] & 0x0F) << 8) | body[i + 4])
    return streams


# -- decoding -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Scan:
    first_damage: int | None  # byte position of the first packet the decoder complained about
    frames: int  # clean video frames before it


def _scan(data: bytes) -> _Scan:
    """Decode every audio and video packet; find the first one the decoder complains about."""
    if not data:
        raise TrimError("empty file")
    try:
        with _errors_captured() as logs, \
                av.open(io.BytesIO(data), "r", format="mpegts") as container:
            return _decode_all(container, logs)
    except av.error.FFmpegError as exc:
        raise TrimError(f"not readable as MPEG-TS: {exc}") from None


def _decode_all(container: av.container.InputContainer, logs: list) -> _Scan:
    streams = [s for s in container.streams if s.type in ("video", "audio")]
    if not container.streams.video:
        raise TrimError("no video stream")
    for stream in streams:
        stream.thread_count = 1  # decode in order, so a complaint belongs to the packet just sent
    position: dict[tuple[int, int | None], int] = {}
    last_position: dict[int, int] = {}
    damage: list[int] = []
    frames: list[int] = []  # positions of the packets of clean video frames
    # opening already decoded a few frames to learn the codecs: judge only the loop's messages
    seen = len(logs)
    for packet in container.demux(streams):
        known = packet.pos is not None and packet.pos >= 0
        pos = packet.pos if known else last_position.get(packet.stream_index, 0)
        if packet.size:
            last_position[packet.stream_index] = pos
            position[(packet.stream_index, packet.pts)] = pos
        decoded = _decode(packet, damage, pos)
        if packet.is_corrupt or any(_is_complaint(entry) for entry in logs[seen:]):
            damage.append(pos)
        seen = len(logs)
        for frame in decoded:
            origin = position.get((packet.stream_index, frame.pts), pos)
            if frame.is_corrupt:
                damage.append(origin)
            elif packet.stream.type == "video":
                frames.append(origin)
    first = min(damage) if damage else None
    return _Scan(first, sum(1 for p in frames if first is None or p < first))


def _is_complaint(entry: tuple[int, str, str]) -> bool:
    """An error, or H.264's note that a slice ran past its data (a frame cut a few bytes short
    decodes from the zero padding, and FFmpeg says so only at debug level)."""
    level, _, message = entry
    return level <= av.logging.ERROR or "bytestream overread" in message


def _decode(packet: av.Packet, damage: list[int], pos: int) -> list:
    try:
        return list(packet.decode())
    except av.error.FFmpegError:
        damage.append(pos)
        return []


class _errors_captured:
    """Collect FFmpeg's messages of this thread while the block runs."""

    def __enter__(self) -> list:
        self._level = av.logging.get_level()
        # PyAV drops FFmpeg's messages unless a level is set; DEBUG for _is_complaint's overread
        av.logging.set_level(av.logging.DEBUG)
        self._capture = av.logging.Capture(True)
        return self._capture.__enter__()

    def __exit__(self, *exc_info: object) -> None:
        self._capture.__exit__(*exc_info)
        av.logging.set_level(self._level)


def _truncate_durably(path: Path, length: int) -> None:
    """Cut a file to ``length`` bytes and fsync it, so the cut survives power loss."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.ftruncate(fd, length)
        os.fsync(fd)
    finally:
        os.close(fd)
