"""ffmpeg's -progress output read on the loop's ticks (recorder/supervise/ffmpeg.py,
ProgressPipe): however the pipe's writes and reads fall, the counters are those of the last
whole lines, an unfinished line waits for its end, and nothing else is taken for a counter."""

from __future__ import annotations

import os

from hypothesis import given
from hypothesis import strategies as st

from nvrlib.ticks import until_tick
from recorder.supervise.ffmpeg import ProgressPipe, progress_counters


def block(frame: int | str, size: int | str) -> bytes:
    """One -progress block as ffmpeg 5.1 writes it."""
    return (f"frame={frame}\nfps=25.00\nstream_0_0_q=-1.0\nbitrate=2100.5kbits/s\n"
            f"total_size={size}\nout_time_us=4000000\nout_time_ms=4000000\n"
            "out_time=00:00:04.000000\ndup_frames=0\ndrop_frames=0\nspeed=1x\n"
            "progress=continue\n").encode()


def test_the_last_numbers_count_and_missing_ones_are_skipped() -> None:
    assert progress_counters(block(100, 4096) + block(150, 8192)) == {"frame": 150,
                                                                     "total_size": 8192}
    assert progress_counters(block(150, "N/A")) == {"frame": 150}
    assert progress_counters(b"frame=12x\nxframe=3\nframe=\ntotal_size=-5\n") == {}


@given(st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 10**12)), min_size=1,
                max_size=20),
       st.lists(st.integers(1, 400), max_size=30), st.sets(st.integers(0, 30)))
def test_any_split_of_writes_and_reads_gives_the_newest_counters(
        values: list[tuple[int, int]], cuts: list[int], reads_after: set[int]) -> None:
    data = b"".join(block(frame, size) for frame, size in values)
    read_fd, write_fd = os.pipe()
    pipe = ProgressPipe(read_fd)
    seen: dict[str, int] = {}
    try:
        pos = 0
        for number, cut in enumerate(cuts):
            os.write(write_fd, data[pos:pos + cut])
            pos += cut
            if number in reads_after:  # the hub's tick falls here: a line may be cut
                counters = pipe.read()
                assert all(isinstance(v, int) for v in counters.values())
                seen.update(counters)
        os.write(write_fd, data[pos:])
        os.close(write_fd)
        write_fd = -1
        seen.update(pipe.read())
        assert pipe.ended
    finally:
        if write_fd >= 0:
            os.close(write_fd)
        pipe.close()
    assert seen == {"frame": values[-1][0], "total_size": values[-1][1]}


def test_an_unfinished_line_waits_for_its_end_or_for_the_pipe_to_close() -> None:
    read_fd, write_fd = os.pipe()
    pipe = ProgressPipe(read_fd)
    os.write(write_fd, b"frame=5\nframe=6")
    assert pipe.read() == {"frame": 5}  # "frame=6" may yet become "frame=60"
    os.write(write_fd, b"0\n")
    assert pipe.read() == {"frame": 60}
    os.write(write_fd, b"frame=61")
    os.close(write_fd)
    assert pipe.read() == {"frame": 61} and pipe.ended
    pipe.close()
    pipe.close()  # twice is harmless


def test_ticks_fall_on_multiples_of_the_period() -> None:
    assert abs(until_tick(10.2, 0.5) - 0.3) < 1e-9
    assert until_tick(10.0, 2.0) == 2.0  # on a tick: the next one, never 0 (no busy loop)
    assert until_tick(7.0, 0) == 0.0
