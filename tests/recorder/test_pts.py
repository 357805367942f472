"""The PES timestamp reader the segmenter uses to learn where a pushed stream's clock is."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from nvrlib.ffmpeg_bin import ffmpeg_exe
from recorder.supervise import pts

VIDEO, AUDIO = 0xE0, 0xC0
PTS_VALUES = st.integers(min_value=0, max_value=pts.PTS_WRAP - 1)


def encode_pts(value: int) -> bytes:
    """The 5 PTS bytes of a PES header ('0010' prefix, marker bits set)."""
    return bytes([0x21 | ((value >> 29) & 0x0E), (value >> 22) & 0xFF,
                  ((value >> 14) & 0xFE) | 1, (value >> 7) & 0xFF, ((value << 1) & 0xFE) | 1])


def packet(pid: int = 0x100, stream_id: int | None = None, value: int = 0,
           adaptation: int = 0) -> bytes:
    """One 188-byte TS packet: a PES start with a PTS if ``stream_id``, else a continuation.

    ``adaptation`` > 0 adds an adaptation field of that many bytes (length byte included).
    """
    control = 0x30 if adaptation else 0x10
    head = bytes([pts.SYNC, (0x40 if stream_id is not None else 0) | (pid >> 8), pid & 0xFF,
                  control])
    field = bytes([adaptation - 1]) + b"\x00" * (adaptation - 1) if adaptation else b""
    payload = b""
    if stream_id is not None:
        payload = b"\x00\x00\x01" + bytes([stream_id]) + b"\x00\x00\x80\x80\x05" + encode_pts(value)
    body = head + field + payload
    return body + b"\xff" * (pts.TS_PACKET - len(body))


def no_stray_sync(value: int) -> bool:
    # a 0x47 inside a PTS could line up with another packet's; real streams have the same
    # (rare) risk, which the reader limits by wanting two syncs 188 bytes apart
    return pts.SYNC not in encode_pts(value)


@given(value=PTS_VALUES, stream_id=st.integers(min_value=0xC0, max_value=0xEF),
       adaptation=st.integers(min_value=0, max_value=160))
def test_a_pes_start_gives_its_stream_id_and_pts(value: int, stream_id: int,
                                                 adaptation: int) -> None:
    assert pts.pes_pts(packet(stream_id=stream_id, value=value, adaptation=adaptation)) == \
        (stream_id, value)


def test_packets_without_a_pes_start_give_nothing() -> None:
    assert pts.pes_pts(packet()) is None  # a continuation
    broken = bytearray(packet(stream_id=VIDEO, value=90_000))
    broken[1] |= 0x80  # transport error indicator
    assert pts.pes_pts(bytes(broken)) is None
    no_payload = bytearray(packet(stream_id=VIDEO, value=90_000))
    no_payload[3] = 0x20
    assert pts.pes_pts(bytes(no_payload)) is None
    assert pts.pes_pts(b"\x47" * 100) is None


# a stream: PES starts of video or audio with their PTS, and continuation packets (None)
STREAMS = st.lists(st.one_of(st.none(), st.tuples(st.sampled_from([VIDEO, AUDIO]),
                                                  PTS_VALUES.filter(no_stray_sync))),
                   min_size=1, max_size=40)
GARBAGE = st.binary(max_size=pts.TS_PACKET - 1).map(lambda b: b.replace(b"\x47", b"\x00"))


def build(stream: list[tuple[int, int] | None]) -> bytes:
    return b"".join(packet(pid=0x100 if item is None or item[0] == VIDEO else 0x101,
                           stream_id=None if item is None else item[0],
                           value=0 if item is None else item[1]) for item in stream)


def video(stream: list[tuple[int, int] | None]) -> list[int]:
    return [item[1] for item in stream if item is not None and item[0] == VIDEO]


@given(stream=STREAMS, head=GARBAGE, tail=st.integers(min_value=0, max_value=187))
def test_the_first_and_last_video_pts_of_a_batch_cut_anywhere(
        stream: list[tuple[int, int] | None], head: bytes, tail: int) -> None:
    """A relay batch starts and ends mid-packet: only whole packets count."""
    extra = packet(stream_id=VIDEO, value=12345)[:tail]  # a packet the next batch finishes
    data = head + build(stream) + extra
    expected = video(stream)
    assert pts.first_video_pts(data) == (expected[0] if expected else None)
    assert pts.last_video_pts(data) == (expected[-1] if expected else None)


@given(stream=STREAMS, cut=st.integers(min_value=0, max_value=40 * 188))
def test_a_stream_split_in_two_batches_loses_only_the_packet_cut_in_half(
        stream: list[tuple[int, int] | None], cut: int) -> None:
    data = build(stream)
    cut = min(cut, len(data))
    first, second = data[:cut], data[cut:]
    whole_first = stream[:cut // pts.TS_PACKET]
    whole_second = stream[-(len(second) // pts.TS_PACKET):] if len(second) >= 188 else []
    assert pts.last_video_pts(first) == (video(whole_first) or [None])[-1]
    assert pts.first_video_pts(second) == (video(whole_second) or [None])[0]


@settings(max_examples=30)
@given(stream=STREAMS)
def test_garbage_between_packets_is_skipped(stream: list[tuple[int, int] | None]) -> None:
    assume(len(stream) >= 3)
    data = build(stream)
    # a few bytes inserted after the second packet, as a sender that lost sync would leave
    cut = 2 * pts.TS_PACKET
    spoiled = data[:cut] + b"\x00\x01\x02" + data[cut:]
    expected = video(stream)
    assert pts.first_video_pts(spoiled) == (expected[0] if expected else None)


def test_real_ffmpeg_output_read_like_pyav(tmp_path: Path) -> None:
    """A stock ffmpeg's MPEG-TS whose PTS start 600 s in: the reader agrees with a demuxer."""
    path = tmp_path / "old.ts"
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc2=size=160x120:rate=25", "-f", "lavfi", "-i", "sine", "-t", "3",
                    "-c:v", "libx264", "-bf", "2", "-g", "25", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-output_ts_offset", "600", "-f", "mpegts", str(path)],
                   check=True, timeout=60)
    data = path.read_bytes()
    with av.open(str(path)) as container:
        video_pts = [p.pts for p in container.demux(video=0) if p.pts is not None]
    assert pts.first_video_pts(data) == video_pts[0]
    assert pts.last_video_pts(data) == video_pts[-1]
    assert 600 < pts.seconds(video_pts[0]) < 602
    # a batch cut mid-file, mid-packet, still finds a PTS in each half
    middle = len(data) // 2 + 77
    assert pts.first_video_pts(data[middle:]) in video_pts
    assert pts.last_video_pts(data[:middle]) in video_pts


# -- where a new ffmpeg starts: pts.StartFinder ----------------------------------------------

PMT_PID, VIDEO_PID = 0x1000, 0x100
H264, HEVC = 0x1B, 0x24


def psi(pid: int, section: bytes) -> bytes:
    """One TS packet holding a whole PSI section (CRC not checked by the finder: zeros)."""
    body = bytes([pts.SYNC, 0x40 | (pid >> 8), pid & 0xFF, 0x10, 0]) + section + b"\0" * 4
    return body + b"\xff" * (pts.TS_PACKET - len(body))


def pat() -> bytes:
    entries = bytes([0, 1, 0xE0 | (PMT_PID >> 8), PMT_PID & 0xFF])
    head = bytes([0x00, 0xB0, 5 + len(entries) + 4, 0, 1, 0xC1, 0, 0])
    return psi(0, head + entries)


def pmt(stream_type: int = H264) -> bytes:
    stream = bytes([stream_type, 0xE0 | (VIDEO_PID >> 8), VIDEO_PID & 0xFF, 0xF0, 0])
    head = bytes([0x02, 0xB0, 9 + len(stream) + 4, 0, 1, 0xC1, 0, 0, 0xE1, 0, 0xF0, 0])
    return psi(PMT_PID, head + stream)


def frame(value: int, nal: int = 0x41, random_access: bool = False) -> bytes:
    """The first packet of a video PES: one NAL unit (header byte ``nal``), RAI if asked."""
    field = bytes([1, 0x40]) if random_access else b""
    head = bytes([pts.SYNC, 0x40 | (VIDEO_PID >> 8), VIDEO_PID & 0xFF,
                  0x30 if random_access else 0x10]) + field
    pes = b"\x00\x00\x01\xe0\x00\x00\x80\x80\x05" + encode_pts(value) + b"\x00\x00\x01" + \
        bytes([nal])
    body = head + pes
    return body + b"\xff" * (pts.TS_PACKET - len(body))


TICK = pts.PTS_HZ // 25


@settings(max_examples=50)
@given(chunks=st.lists(st.integers(min_value=1, max_value=600), min_size=30, max_size=30),
       head=GARBAGE)
def test_the_start_is_the_pat_before_the_first_keyframe_after_a_pmt(chunks: list[int],
                                                                   head: bytes) -> None:
    """Frames before the PMT are unknown to a new demuxer: its first keyframe comes after."""
    early_key = frame(0, random_access=True)  # before any PAT: ffmpeg could not use it
    stream = [early_key, frame(TICK), pat(), pmt(), frame(2 * TICK), frame(3 * TICK), pat(),
              frame(4 * TICK, random_access=True), frame(5 * TICK)]
    data = head + b"".join(stream)
    finder, pos = pts.StartFinder(), 0
    for size in chunks:  # as relay batches come, cut anywhere
        finder.feed(data[pos:pos + size])
        pos += size
    finder.feed(data[pos:])
    expected_offset = len(head) + 2 * pts.TS_PACKET  # the PAT that its PMT follows
    assert finder.start == pts.StartPoint(offset=expected_offset, pts=4 * TICK)
    assert data[finder.start.offset:].startswith(pat()[:4])


@pytest.mark.parametrize(("stream_type", "nal", "key"), [
    (H264, 0x65, True),  # IDR slice
    (H264, 0x67, True),  # SPS
    (H264, 0x41, False),  # non-IDR slice
    (HEVC, 0x40, True),  # VPS (0x41 is H.264's P slice: the PMT's stream type decides)
    (HEVC, 0x26, True),  # IDR_W_RADL
    (HEVC, 0x02, False),  # TRAIL_R
])
def test_a_keyframe_without_random_access_flag_is_known_by_its_nal_unit(
        stream_type: int, nal: int, key: bool) -> None:
    finder = pts.StartFinder()
    finder.feed(pat() + pmt(stream_type) + frame(TICK, nal=nal))
    assert finder.start == (pts.StartPoint(0, TICK) if key else None)
    assert finder.first_pts == TICK


def test_video_without_a_known_keyframe_counts_the_seconds_searched() -> None:
    finder = pts.StartFinder()
    finder.feed(pat() + pmt() + b"".join(frame(600 * pts.PTS_HZ + n * TICK) for n in range(26)))
    assert finder.start is None
    assert finder.first_pts == 600 * pts.PTS_HZ
    assert finder.searched() == pytest.approx(1.0)


@pytest.mark.parametrize("cut", [0, 33_333, 77_777, 120_001])
def test_real_ffmpeg_writes_the_found_keyframe_first(tmp_path: Path, cut: int) -> None:
    """A stock ffmpeg stream with audio, cut anywhere: `-c copy` starts at the found keyframe."""
    source = tmp_path / "old.ts"
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine", "-t", "4",
                    "-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac",
                    "-output_ts_offset", "600", "-f", "mpegts", str(source)],
                   check=True, timeout=60)
    data = source.read_bytes()[cut:]
    finder = pts.StartFinder()
    for pos in range(0, len(data), 5000):
        if finder.feed(data[pos:pos + 5000]):
            break
    assert finder.start is not None
    for name, fed in (("whole", data), ("trimmed", data[finder.start.offset:])):
        copy = tmp_path / f"{name}.ts"
        subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "mpegts",
                        "-i", "pipe:0", "-map", "0:v:0", "-c", "copy", "-copyts",
                        "-muxdelay", "0", "-muxpreload", "0", "-f", "mpegts", str(copy)],
                       input=fed, capture_output=True, check=True, timeout=60)
        with av.open(str(copy)) as container:
            first = next(p for p in container.demux(video=0) if p.pts is not None)
        assert first.pts == finder.start.pts and first.is_keyframe, name
