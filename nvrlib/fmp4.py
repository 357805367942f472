"""Fragmented MP4 as the live view carries it: top-level boxes, keyframes, and the files on disk.

The hub's live tap remuxes a camera's H.264 (no re-encoding) into fragmented MP4 with one frame
per fragment (ffmpeg ``-movflags empty_moov+default_base_moof+frag_every_frame``; with sound, a
fragment per packet of either track): an init segment (``ftyp`` + ``moov``), then ``moof`` +
``mdat`` pairs. It writes them into the camera's
live folder as a small ring of files, one per group of pictures (docs/design/live.md):

    mse-<tap>-init.mp4     the init segment of tap run <tap> (written whole, by rename)
    mse-<tap>-<n>.m4s      the fragments of group n, from its keyframe on, appended as they come
    mse.head               "<tap> <n>": the newest group (replaced by rename when one begins)

Both sides use this module: the hub to split ffmpeg's output and find keyframes, the web app to
tail the files and hand whole fragments to every viewer.
"""

from __future__ import annotations

import re
import struct

HEAD = "mse.head"
HEAD_RE = re.compile(r"([0-9a-f]{1,32}) ([0-9]{1,12})")
GROUPS_KEPT = 3  # groups of pictures on disk: a slow reader still finds the one it reads
MAX_BOX = 32 * 1024 * 1024  # one frame of even a 4K camera is far below this

_NON_SYNC = 0x00010000  # sample_is_non_sync_sample of ISO/IEC 14496-12 sample flags


class BadBox(ValueError):
    """Bytes that are not a well-formed top-level MP4 box."""


def init_name(tap: str) -> str:
    """Return the file name of a tap run's init segment."""
    return f"mse-{tap}-init.mp4"


def group_name(tap: str, number: int) -> str:
    """Return the file name of a tap run's group of pictures number ``number``."""
    return f"mse-{tap}-{number}.m4s"


def head_text(tap: str, number: int) -> str:
    """Return what ``mse.head`` holds while group ``number`` of run ``tap`` is the newest."""
    return f"{tap} {number}\n"


def parse_head(text: str) -> tuple[str, int] | None:
    """Return (tap, group number) from the text of ``mse.head``, or None if it is not one."""
    match = HEAD_RE.fullmatch(text.strip())
    return (match[1], int(match[2])) if match else None


def box_header(data: bytes | memoryview, pos: int = 0) -> tuple[int, bytes] | None:
    """Return (size, type) of the box at ``pos``, or None if its header is not all there."""
    if len(data) - pos < 8:
        return None
    size, kind = struct.unpack_from(">I4s", data, pos)
    if size == 1:  # a 64-bit size follows
        if len(data) - pos < 16:
            return None
        size = struct.unpack_from(">Q", data, pos + 8)[0]
    if size < 8 or size > MAX_BOX:
        raise BadBox(f"box {kind!r} of {size} bytes")
    return size, bytes(kind)


def split_boxes(data: bytes) -> tuple[list[bytes], bytes]:
    """Split ``data`` into whole top-level boxes and the incomplete rest."""
    boxes, pos = [], 0
    while (header := box_header(data, pos)) is not None and pos + header[0] <= len(data):
        boxes.append(data[pos:pos + header[0]])
        pos += header[0]
    return boxes, data[pos:]


def box_type(box: bytes) -> bytes:
    """Return the four-character type of a whole box."""
    return box[4:8]


def _children(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """The boxes directly inside ``data[start:end]``: (type, body start, end), in order."""
    found: list[tuple[bytes, int, int]] = []
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        if size < 8 or pos + size > end:
            break
        found.append((kind, pos + 8, pos + size))
        pos += size
    return found


def _child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    """The body (start, end) of the first box of type ``kind`` inside ``data[start:end]``."""
    return next(((s, e) for k, s, e in _children(data, start, end) if k == kind), None)


def video_track_id(init: bytes) -> int | None:
    """Return the track_ID of the video track of an init segment (ftyp + moov), or None."""
    moov = _child(init, 0, len(init), b"moov")
    if moov is None:
        return None
    for kind, start, end in _children(init, *moov):
        if kind != b"trak":
            continue
        tkhd, mdia = _child(init, start, end, b"tkhd"), _child(init, start, end, b"mdia")
        hdlr = _child(init, *mdia, b"hdlr") if mdia else None
        # hdlr: version/flags (4), pre_defined (4), handler_type; tkhd: version/flags, two
        # times (4 or 8 bytes each by version), then track_ID
        if tkhd and hdlr and init[hdlr[0] + 8:hdlr[0] + 12] == b"vide":
            times = 16 if init[tkhd[0]] == 1 else 8
            return struct.unpack_from(">I", init, tkhd[0] + 4 + times)[0]
    return None


def starts_with_keyframe(moof: bytes, video_track: int | None = None) -> bool:
    """Tell whether a ``moof``'s first video sample is a sync sample (a keyframe).

    ``video_track`` (from `video_track_id`) picks the video track's fragment out of a stream
    that also carries audio, whose every sample is a sync sample; None takes the first track.
    """
    for kind, start, end in _children(moof, 8, len(moof)):
        if kind != b"traf":
            continue
        parts = {k: (s, e) for k, s, e in reversed(_children(moof, start, end))}
        if b"trun" not in parts or b"tfhd" not in parts:
            return False
        track = struct.unpack_from(">I", moof, parts[b"tfhd"][0] + 4)[0]
        if video_track is not None and track != video_track:
            continue
        flags = _first_sample_flags(moof, parts[b"tfhd"][0], parts[b"trun"][0])
        return flags is not None and not flags & _NON_SYNC
    return False


def _first_sample_flags(moof: bytes, tfhd: int, trun: int) -> int | None:
    trun_flags = struct.unpack_from(">I", moof, trun)[0] & 0xFFFFFF
    pos = trun + 8 + (4 if trun_flags & 0x1 else 0)  # version/flags, sample_count, data_offset
    if trun_flags & 0x4:  # first_sample_flags
        return struct.unpack_from(">I", moof, pos)[0]
    if trun_flags & 0x400:  # per-sample flags: the first sample's
        pos += 4 * bool(trun_flags & 0x100) + 4 * bool(trun_flags & 0x200)
        return struct.unpack_from(">I", moof, pos)[0]
    tfhd_flags = struct.unpack_from(">I", moof, tfhd)[0] & 0xFFFFFF
    if not tfhd_flags & 0x20:  # no default_sample_flags here (they are in the moov's trex)
        return None
    pos = tfhd + 8  # version/flags, track_ID
    for bit, width in ((0x1, 8), (0x2, 4), (0x8, 4), (0x10, 4)):
        pos += width if tfhd_flags & bit else 0
    return struct.unpack_from(">I", moof, pos)[0]
