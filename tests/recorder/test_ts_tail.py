"""The last video PTS of a segment, read from its PES headers, as acks need it."""

from __future__ import annotations

import av
from hypothesis import given
from hypothesis import strategies as st

from recorder.store.ts_tail import PTS_HZ, WRAP, last_video_pts, unwrap_near
from tests.support.media import encoded_ts


def test_last_video_pts_is_the_last_frame_pyav_sees(tmp_path):
    path = tmp_path / "clip.ts"
    path.write_bytes(encoded_ts(3, rate=25))
    with av.open(str(path)) as container:
        last = max(p.pts for p in container.demux(video=0) if p.pts is not None)
    assert last_video_pts(path) == last


def test_a_file_without_video_pes_has_no_last_pts(tmp_path):
    path = tmp_path / "empty.ts"
    path.write_bytes(b"\x47\x1f\xff\x10" + b"\xff" * 184)  # one null packet
    assert last_video_pts(path) is None


@given(st.integers(0, 4 * WRAP), st.integers(-PTS_HZ * 3600, PTS_HZ * 3600))
def test_unwrap_puts_a_33_bit_pts_back_next_to_the_listed_time(true_ticks, offset):
    reference = max(true_ticks + offset, 0) / PTS_HZ  # the listed end, within an hour
    assert unwrap_near(true_ticks % WRAP, reference) == true_ticks / PTS_HZ
