"""The PES timestamp reader the segmenter uses to learn where a pushed stream's clock is."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
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
