"""Frame sources: a moving test pattern, real-time pacing, video files, and dropping frames."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edge.capture import (
    Frame, LatestFrame, OpenCVSource, Pacer, RateLimiter, SyntheticSource, fit, open_source,
)
from edge.cli import StreamConfig
from edge.errors import SourceError
from edge.sources import parse_source
from tests.edge.fakehub import VIDEO_FPS, VIDEO_FRAMES


class FakeClock:
    """A monotonic clock that only moves when the code under test waits."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now


class FakeStop(threading.Event):
    """A stop event whose wait() advances the fake clock instead of sleeping."""

    def __init__(self, clock: FakeClock, lateness: float = 0.0) -> None:
        super().__init__()
        self.clock = clock
        self.lateness = lateness

    def wait(self, timeout: float | None = None) -> bool:
        self.clock.waits.append(timeout or 0.0)
        self.clock.now += (timeout or 0.0) + self.lateness
        return self.is_set()


def test_test_scene_moves_in_bursts_and_rests_between_them() -> None:
    source = SyntheticSource(320, 240, 15)
    frames = [source.render(i) for i in range(0, 15 * 30 + 40)]  # one 30-s cycle and a bit
    assert all(f.shape == (240, 320, 3) and f.dtype == np.uint8 for f in frames)
    moving = 8 * 15  # the box moves for the first 8 s of every 30 s
    assert all(np.mean(a != b) > 0.001 for a, b in zip(frames[:moving], frames[1:moving]))
    assert all(np.array_equal(a, b) for a, b in zip(frames[moving:450], frames[moving + 1:450]))
    assert np.mean(frames[450] != frames[451]) > 0.001  # the next burst


def test_pacer_keeps_deadlines_on_a_grid_despite_late_wakeups() -> None:
    clock = FakeClock()
    stop = FakeStop(clock, lateness=0.004)  # every sleep overshoots by 4 ms
    pacer = Pacer(10, clock=clock)
    starts = []
    for _ in range(50):
        assert pacer.wait(stop)
        starts.append(clock.now)
    # Deadline-based: the overshoot is not added up, frame 49 is due 4.9 s after frame 0.
    assert starts[-1] - starts[0] == pytest.approx(4.9, abs=0.005)


def test_pacer_skips_ahead_instead_of_bursting_after_a_long_stall() -> None:
    clock = FakeClock()
    stop = FakeStop(clock)
    pacer = Pacer(10, clock=clock)
    pacer.wait(stop)
    clock.now += 3.0  # the capture thread was stalled for 30 frames
    pacer.wait(stop)
    clock.waits.clear()
    pacer.wait(stop)
    assert clock.waits == [pytest.approx(0.1)]


def test_pacer_returns_false_once_stopped() -> None:
    stop = threading.Event()
    stop.set()
    pacer = Pacer(1)
    pacer.wait(stop)  # the first frame is due at once
    assert not pacer.wait(stop)


def test_test_source_is_paced_in_real_time() -> None:
    stop = threading.Event()
    source = SyntheticSource(160, 120, 50)
    stamps = []
    for frame in source.frames(stop):
        stamps.append(frame.monotonic)
        if len(stamps) == 26:
            stop.set()
    # never faster than real time; slower only by what a busy machine delays the last frame
    # (the suite runs three workers on two cores)
    assert 0.48 <= stamps[-1] - stamps[0] <= 0.8


def test_rate_limiter_halves_a_source_running_at_twice_fps() -> None:
    limiter = RateLimiter(15)
    kept = [t for t in (i / 30 for i in range(60)) if limiter.admit(t)]
    assert len(kept) == 30


def test_rate_limiter_keeps_every_frame_of_a_jittery_source_at_fps() -> None:
    limiter = RateLimiter(15)
    rng = np.random.default_rng(1)
    times = [i / 15 + rng.uniform(-0.008, 0.008) for i in range(60)]
    assert all(limiter.admit(t) for t in times)


def test_latest_frame_drops_unread_frames_and_keeps_the_last_at_the_end() -> None:
    slot = LatestFrame()
    image = np.zeros((2, 2, 3), np.uint8)
    for i in range(3):
        slot.put(Frame(image, float(i), float(i)))
    slot.end()
    assert not slot.ended
    frame = slot.get(0)
    assert frame is not None and frame.monotonic == 2.0
    assert slot.dropped == 2 and slot.ended and slot.get(0) is None


def file_config(path: Path, loop: bool, fps: float = 15) -> StreamConfig:
    return StreamConfig("cam", parse_source(str(path)), fps=fps, width=160, height=120, loop=loop)


def test_video_file_plays_once_in_real_time_and_ends(video_file: Path) -> None:
    source = open_source(file_config(video_file, loop=False))
    try:
        assert isinstance(source, OpenCVSource) and source.fps == pytest.approx(VIDEO_FPS)
        frames = list(source.frames(threading.Event()))
    finally:
        source.close()
    assert len(frames) == VIDEO_FRAMES
    assert all(f.image.shape == (120, 160, 3) for f in frames)
    elapsed = frames[-1].monotonic - frames[0].monotonic
    # in real time: never faster than the file's rate; later only by how late a loaded machine
    # wakes the reader (2.20 s against 1.93 s once, in a full suite run on 2 cores)
    real_time = (VIDEO_FRAMES - 1) / VIDEO_FPS
    assert real_time - 0.15 <= elapsed < real_time + 1.0, elapsed
    assert abs(frames[0].wall - time.time()) < 5


def test_video_file_loops_when_asked(video_file: Path) -> None:
    stop = threading.Event()
    source = open_source(file_config(video_file, loop=True, fps=60))
    count = 0
    try:
        for _ in source.frames(stop):
            count += 1
            if count == VIDEO_FRAMES + 5:
                stop.set()
    finally:
        source.close()
    assert count == VIDEO_FRAMES + 5


def test_missing_file_raises_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="cannot open file"):
        open_source(file_config(tmp_path / "missing.mp4", loop=False))


def test_frames_are_resized_to_the_configured_size() -> None:
    image = np.zeros((480, 640, 3), np.uint8)
    assert fit(image, 320, 240).shape == (240, 320, 3)
    assert fit(image[:, :, 0], 640, 480).shape == (480, 640, 3)
    assert fit(image, 640, 480) is image
