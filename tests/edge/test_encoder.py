"""H.264 in MPEG-TS that PyAV decodes, with regular keyframes and PTS from the capture clock."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.capture import SyntheticSource
from edge.encoder import Encoder, EncoderSettings, pts_for
from recorder.supervise.pts import StartFinder
from tests.edge.fakehub import decode_ts

SETTINGS = EncoderSettings(width=320, height=240, fps=15, bitrate=500_000, threads=1)


def encode(path: Path, times: list[float], settings: EncoderSettings = SETTINGS) -> bytes:
    """Encode synthetic frames captured at ``times`` (monotonic) into ``path``; return its bytes."""
    source = SyntheticSource(settings.width, settings.height, settings.fps)
    encoder = Encoder(settings, start_monotonic=times[0])
    try:
        data = b"".join(encoder.encode(source.render(i), t) for i, t in enumerate(times))
        data += encoder.finish()
    finally:
        encoder.close()
    path.write_bytes(data)
    return data


def test_output_is_h264_in_mpegts_that_pyav_decodes(tmp_path: Path) -> None:
    path = tmp_path / "out.ts"
    data = encode(path, [100 + i / 15 for i in range(30)])
    assert len(data) % 188 == 0 and data[::188] == b"\x47" * (len(data) // 188)
    pids = [((data[i + 1] & 0x1F) << 8) | data[i + 2] for i in range(0, len(data), 188)]
    first_video = next(i for i, pid in enumerate(pids) if pid not in (0x0000, 0x0011, 0x1000))
    assert {0x0000, 0x1000} <= set(pids[:first_video])  # PAT and PMT come before any video
    fmt, codec, pts, keys = decode_ts(path)
    assert (fmt, codec, len(pts)) == ("mpegts", "h264", 30)
    assert keys[0] == pts[0] == 0  # a new stream starts with a keyframe


def test_every_chunk_is_whole_ts_packets_so_the_first_can_be_sent_at_once(tmp_path: Path) -> None:
    source = SyntheticSource(320, 240, 15)
    encoder = Encoder(SETTINGS, start_monotonic=0.0)
    try:
        first = encoder.encode(source.render(0), 0.0)
    finally:
        encoder.close()
    # The hub checks the first 3 x 188 bytes for sync bytes before it accepts the stream.
    assert len(first) >= 3 * 188 and first[0:564:188] == b"\x47\x47\x47"


def test_keyframes_come_at_most_two_seconds_apart(tmp_path: Path) -> None:
    path = tmp_path / "out.ts"
    encode(path, [i / 15 for i in range(6 * 15)])
    _, _, pts, keys = decode_ts(path)
    gaps = np.diff(keys)
    assert len(keys) >= 5 and gaps.max() <= 2 * 90_000
    assert gaps.min() >= 0.9 * 90_000  # regular: no extra keyframes on scene changes


def test_keyframes_stay_regular_when_the_camera_runs_slower_than_fps(tmp_path: Path) -> None:
    path = tmp_path / "out.ts"
    encode(path, [i / 6 for i in range(6 * 6)])  # 6 fps actual, encoder told 15
    _, _, _, keys = decode_ts(path)
    assert len(keys) >= 5 and np.diff(keys).max() <= 2 * 90_000


def test_pts_follow_the_capture_clock_across_a_gap(tmp_path: Path) -> None:
    path = tmp_path / "out.ts"
    start = 5000.0
    encode(path, [start, start + 0.1, start + 0.5])
    _, _, pts, _ = decode_ts(path)
    assert pts == [0, 9000, 45000]


def test_pts_strictly_increase_even_for_equal_capture_times() -> None:
    encoder = Encoder(SETTINGS, start_monotonic=10.0)
    try:
        assert [encoder.next_pts(t) for t in (10.0, 10.0, 9.99, 10.1)] == [0, 1, 2, 9000]
    finally:
        encoder.close()
    assert pts_for(12.5, 10.0) == 225_000


def test_every_chunk_marked_keyframe_is_where_a_demuxer_can_start() -> None:
    """A request or spool file starts at a chunk marked keyframe: its bytes must carry a PAT and
    PMT before the IDR, or the hub's ffmpeg skips to the next one and a second is lost (seen
    when a live request was asked for right after a keyframe: the muxer wrote no PAT then)."""
    source = SyntheticSource(320, 240, 15)
    encoder = Encoder(SETTINGS, start_monotonic=0.0)
    starts = 0
    try:
        for i in range(60):
            if i % 3 != 1:  # asked for often, and right after keyframes
                encoder.force_keyframe()
            chunk = encoder.encode_chunk(source.render(i), i / 15)
            if chunk.keyframe:
                starts += 1
                found = StartFinder().feed(chunk.data)
                assert found is not None and found.pts == chunk.pts, (i, found)
    finally:
        encoder.close()
    assert starts >= 15  # asking for a keyframe still gets one within a frame or two
