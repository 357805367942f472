"""Trimming torn MPEG-TS segments: real libx264 streams from ffmpeg, cut at many byte offsets."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import av
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from nvrlib.ffmpeg_bin import ffmpeg_exe
from recorder.store.trim import (
    PACKET_SIZE, TrimError, iter_packets, parse_program, plan_cut, structural_end, trim_segment,
)
from tests.support.media import ffmpeg_complaints, pyav_complaints

# Like the stock pusher (tests/support/procs.ffmpeg_pusher) and the edge: libx264, zerolatency
# (several slices per frame), one keyframe a second; plus B-frames, which reorder.
ENCODINGS = {
    "pusher": ["-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-g", "25"],
    "pusher+audio": ["-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-g", "25",
                     "-c:a", "aac", "-b:a", "64k"],
    "b-frames": ["-c:v", "libx264", "-g", "25", "-bf", "2"],
}
EXAMPLES = 30  # per encoding and kind of tear; each example runs ffmpeg twice


def make_ts(kind: str, seconds: float = 2.0) -> bytes:
    """Real H.264 (and AAC) in MPEG-TS made by the bundled ffmpeg."""
    inputs = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"]
    if "audio" in kind:
        inputs += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    argv = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", *inputs, "-t", f"{seconds:g}",
            *ENCODINGS[kind], "-pix_fmt", "yuv420p", "-threads", "2", "-f", "mpegts", "pipe:1"]
    return subprocess.run(argv, check=True, capture_output=True, timeout=60).stdout


class Samples(dict):
    """Sample streams by encoding, with a short repr for hypothesis' failure reports."""

    def __repr__(self) -> str:
        return f"Samples({', '.join(f'{k}: {len(v)} bytes' for k, v in self.items())})"


@pytest.fixture(scope="module")
def streams() -> Samples:
    """One sample stream per encoding."""
    return Samples((kind, make_ts(kind)) for kind in ENCODINGS)


def stream_copied(data: bytes) -> bytes:
    """What the hub's segmenter writes when its stdin ends here: a stream copy of ``data``."""
    argv = [ffmpeg_exe(), "-hide_banner", "-loglevel", "quiet", "-f", "mpegts", "-i", "pipe:0",
            "-map", "0:v:0", "-map", "0:a?", "-c", "copy", "-copyts", "-muxdelay", "0",
            "-muxpreload", "0", "-f", "mpegts", "pipe:1"]
    return subprocess.run(argv, input=data, capture_output=True, timeout=60).stdout


def video_frame_ends(data: bytes) -> list[int]:
    """The byte offset just past the last TS packet of each video PES, in file order."""
    program = parse_program(data)
    assert program is not None and program.video_pid is not None
    ends: list[int] = []
    current = None
    for packet in iter_packets(data):
        if packet.pid == program.video_pid:
            if packet.unit_start and current is not None:
                ends.append(current)
            current = packet.offset + PACKET_SIZE
    return [*ends, current]


def video_packets(data: bytes) -> list[bytes]:
    """The video packets' bytes, in decode order."""
    with av.open(io.BytesIO(data), format="mpegts") as container:
        return [bytes(p) for p in container.demux(video=0) if p.size]


def assert_clean(path: Path) -> None:
    """Both decoders take the file without a single message."""
    assert ffmpeg_complaints(path) == ""
    assert pyav_complaints(path) == []


def check_trim(tmp_path: Path, original: bytes, torn: bytes, complete: int) -> None:
    """Trimming ``torn`` keeps exactly the ``complete`` first frames, cleanly, idempotently."""
    path = tmp_path / "abcdef12-000000.ts"
    path.write_bytes(torn)
    if complete == 0:
        with pytest.raises(TrimError):
            trim_segment(path)
        assert path.read_bytes() == torn  # left for quarantine, untouched
        return
    result = trim_segment(path)
    kept = path.read_bytes()
    assert len(kept) == result.size_after and kept == torn[:len(kept)]
    assert result.frames == complete
    assert video_packets(kept) == video_packets(original)[:complete]
    assert_clean(path)
    again = trim_segment(path)
    assert not again.trimmed and path.read_bytes() == kept


@pytest.mark.parametrize("kind", ENCODINGS)
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fraction=st.floats(0.0, 1.0))
def test_a_file_cut_mid_write_keeps_every_complete_frame_and_decodes_cleanly(
        tmp_path, streams, kind, fraction):
    original = streams[kind]
    offset = round(fraction * len(original))
    complete = sum(1 for end in video_frame_ends(original) if end <= offset)
    check_trim(tmp_path, original, original[:offset], complete)


@pytest.mark.parametrize("kind", ENCODINGS)
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fraction=st.floats(0.05, 1.0))
def test_a_partial_frame_copied_into_a_whole_pes_is_cut(tmp_path, streams, kind, fraction):
    # the hub died, its ffmpeg read EOF mid-frame and its demuxer flushed the partial frame
    original = streams[kind]
    offset = round(fraction * len(original))
    copied = stream_copied(original[:offset])
    assume(copied)  # empty when ffmpeg saw too little to learn the audio codec
    assert len(copied) % PACKET_SIZE == 0  # whole packets: TS headers alone cannot tell
    complete = sum(1 for end in video_frame_ends(original) if end <= offset)
    check_trim(tmp_path, original, copied, complete)


@pytest.mark.parametrize("kind", ENCODINGS)
def test_a_whole_segment_is_left_as_it_is(tmp_path, streams, kind):
    path = tmp_path / "abcdef12-000000.ts"
    path.write_bytes(streams[kind])
    result = trim_segment(path)
    assert not result.trimmed and result.frames == 50
    assert path.read_bytes() == streams[kind]


def test_the_program_tables_name_the_video_and_audio_pids(streams):
    program = parse_program(streams["pusher+audio"])
    assert program is not None
    assert program.video_pid == 0x100 and program.streams == {0x100: 0x1B, 0x101: 0x0F}


def test_an_audio_pes_cut_short_of_its_length_is_dropped(streams):
    data = streams["pusher+audio"]
    program = parse_program(data)
    audio_starts = [p.offset for p in iter_packets(data) if p.pid == 0x101 and p.unit_start]
    # a packet boundary inside an audio PES that spans several packets
    start = next(s for s in audio_starts[5:]
                 if _parse_pid(data, s + PACKET_SIZE) == 0x101)
    end, reason = structural_end(data[:start + PACKET_SIZE])
    assert end == start and "length" in reason, program


def _parse_pid(data: bytes, offset: int) -> int:
    return ((data[offset + 1] & 0x1F) << 8) | data[offset + 2]


def test_damage_in_the_middle_keeps_the_clean_part_before_it(tmp_path, streams):
    data = bytearray(streams["pusher"])
    middle = len(data) // 2 // PACKET_SIZE * PACKET_SIZE
    data[middle:middle + 8 * PACKET_SIZE] = bytes(8 * PACKET_SIZE)  # a hole of zeros
    path = tmp_path / "abcdef12-000000.ts"
    path.write_bytes(bytes(data))
    result = trim_segment(path)
    assert result.size_after <= middle and result.frames > 10
    assert_clean(path)


@pytest.mark.parametrize("content", [
    b"",
    bytes(PACKET_SIZE * 10),
    b"\x47" + bytes(PACKET_SIZE * 20),  # a sync byte, then nothing
    b"not a video at all, just text\n" * 100,
    bytes(range(256)) * 50,
])
def test_empty_and_garbage_files_are_refused_and_left_untouched(tmp_path, content):
    path = tmp_path / "abcdef12-000000.ts"
    path.write_bytes(content)
    with pytest.raises(TrimError):
        trim_segment(path)
    assert path.read_bytes() == content


def test_only_program_tables_and_a_partial_first_frame_are_refused(streams):
    data = streams["pusher"]
    first_frame_end = video_frame_ends(data)[0]
    with pytest.raises(TrimError):
        plan_cut(data[:first_frame_end - 1])
