"""The edge's motion detector on synthetic frames: noise, a moving square, the clock, masks."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from edge.capture import Frame
from edge.cli import StreamConfig
from edge.encoder import Encoder
from edge.motion import (
    BadSettings, Detector, EventTracker, MotionEvent, MotionSettings, MotionWorker, Sample,
    handover_copy, min_area, noise_threshold, settings_from_json, small_copy,
)
from edge.sources import parse_source
from edge.stream import StreamWorker
from edge.uplink import HubAddress

WIDTH, HEIGHT = 640, 360
RATE = 5.0  # samples per second, as the worker takes them
SQUARE = 60


def scene(seed: int = 1) -> np.ndarray:
    """A still, textured scene."""
    rng = np.random.default_rng(seed)
    base = rng.integers(60, 180, (HEIGHT // 8, WIDTH // 8, 3), dtype=np.uint8)
    return cv2.resize(base, (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR)


_NOISE: dict[float, list[np.ndarray]] = {}


def noisy(image: np.ndarray, index: int, sigma: float = 10.0) -> np.ndarray:
    """The scene with sensor noise, as a camera gives it: a different draw each frame."""
    if sigma not in _NOISE:  # eight draws, cycled: drawing afresh each frame is slow
        rng = np.random.default_rng(11)
        _NOISE[sigma] = [rng.normal(0, sigma, image.shape).astype(np.int16) for _ in range(8)]
    return np.clip(image + _NOISE[sigma][index % 8], 0, 255).astype(np.uint8)


def with_square(image: np.ndarray, x: int, y: int) -> np.ndarray:
    out = image.copy()
    cv2.rectangle(out, (x, y), (x + SQUARE, y + SQUARE), (250, 250, 250), -1)
    return out


def run_tracker(frames: list[np.ndarray], settings: MotionSettings = MotionSettings(),
                ) -> tuple[list[MotionEvent], list[Sample]]:
    """Feed frames sampled at RATE through a detector and tracker; return events and samples."""
    reports: list[MotionEvent] = []
    detector = Detector(settings)
    tracker = EventTracker(reports.append)
    samples = []
    for i, frame in enumerate(frames):
        sample = detector.compare(small_copy(frame))
        samples.append(sample)
        tracker.update(1000.0 + i / RATE, sample, small_copy(frame))
    tracker.flush()
    return reports, samples


def moving_square_frames(still_before: int = 15, moving: int = 15, still_after: int = 25,
                         row: int = 150) -> list[np.ndarray]:
    background = scene()
    frames = [noisy(background, i) for i in range(still_before)]
    frames += [noisy(with_square(background, 100 + 20 * i, row), i) for i in range(moving)]
    frames += [noisy(background, i) for i in range(still_after)]
    return frames


def ended(reports: list[MotionEvent]) -> list[MotionEvent]:
    return [r for r in reports if r.end is not None]


def test_a_still_noisy_scene_gives_no_event() -> None:
    background = scene()
    reports, samples = run_tracker([noisy(background, i, sigma=14) for i in range(60)])
    assert reports == [] and not any(s.moved for s in samples)


def test_a_moving_square_gives_one_event_with_its_box_and_a_snapshot() -> None:
    reports, _ = run_tracker(moving_square_frames())
    [start, end] = reports
    assert start.key == end.key and start.end is None
    # moving from sample 15 to 29 (3.0-5.8 s); the start needs two samples in a row
    assert 3.0 <= start.start - 1000 <= 3.4
    # the last motion: the square leaves at 6.0 s; the average forgets its trail within ~1 s
    assert 5.6 <= end.end - 1000 <= 7.0
    x, y, w, h = end.box
    # the square spans x 100..440+60 over the event; the peak's box holds one or two squares
    assert 100 / WIDTH - 0.05 <= x and x + w <= 560 / WIDTH + 0.05
    assert abs(y - 150 / HEIGHT) < 0.06 and abs(h - SQUARE / HEIGHT) < 0.08
    assert 0 < end.score < 0.2
    image = cv2.imdecode(np.frombuffer(end.snapshot, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape[1] == 320


def test_a_masked_zone_ignores_motion_there_but_not_elsewhere() -> None:
    zone = MotionSettings(mask=(((0.0, 0.2), (1.0, 0.2), (1.0, 0.8), (0.0, 0.8)),))
    reports, _ = run_tracker(moving_square_frames(row=150), zone)
    assert reports == []
    reports, _ = run_tracker(moving_square_frames(row=20), zone)  # above the zone
    assert len(ended(reports)) == 1


def test_sensitivity_moves_the_noise_threshold_and_the_minimum_area() -> None:
    assert noise_threshold(1) > noise_threshold(50) > noise_threshold(100)
    assert min_area(1) > min_area(50) > min_area(100)
    # a faint change (+20 grey levels) counts at 100 and not at 1
    background = scene()
    faint = background.copy()
    faint[100:200, 200:300] = np.clip(faint[100:200, 200:300].astype(int) + 20, 0, 255)
    for sensitivity, expected in ((1, False), (100, True)):
        detector = Detector(MotionSettings(sensitivity=sensitivity))
        detector.compare(small_copy(background))
        assert detector.compare(small_copy(faint)).moved is expected


def test_a_long_event_is_split_and_a_short_blip_is_not_an_event() -> None:
    reports: list[MotionEvent] = []
    tracker = EventTracker(reports.append, max_event=10.0)
    moving = Sample(True, 0.1, (0.1, 0.1, 0.2, 0.2))
    for i in range(125):  # 25 s of motion
        tracker.update(i / RATE, moving)
    tracker.flush()
    done = ended(reports)
    assert [round(e.end - e.start) for e in done] == [10, 10, 5]
    assert len({e.key for e in done}) == 3
    blip: list[MotionEvent] = []
    tracker = EventTracker(blip.append)
    tracker.update(0.0, moving)
    for i in range(1, 30):
        tracker.update(i / RATE, Sample(False))
    assert blip == []


def test_the_copy_is_taken_before_the_overlay_so_the_clock_never_counts() -> None:
    config = StreamConfig("porch", parse_source("test"), fps=15, width=WIDTH, height=HEIGHT,
                          bitrate=300_000)
    worker = StreamWorker(config, HubAddress("127.0.0.1", 9, None, "yard"), threading.Event())
    reports: list[MotionEvent] = []
    motion = MotionWorker("porch", MotionSettings(sensitivity=100), reports.append,
                          threading.Event(), rate=1000.0)
    worker.motion = motion
    encoder = Encoder(worker._settings, start_monotonic=0.0)
    background = scene()
    detector = Detector(MotionSettings(sensitivity=100))
    after_overlay: list[Sample] = []
    try:
        for i in range(40):  # 8 s of a still scene, the clock ticking on the picture
            frame_image = background.copy()
            frame = Frame(frame_image, i / RATE, 1_700_000_000 + i / RATE)
            worker._encode(encoder, 0, frame)
            wall, copy = motion._slot
            motion._slot = None
            assert np.array_equal(copy, handover_copy(background))  # taken before the overlay
            motion._process(wall, copy)
            after_overlay.append(detector.compare(small_copy(frame_image)))
    finally:
        encoder.close()
    motion.tracker.flush()
    assert reports == []
    assert any(s.moved for s in after_overlay), "the overlay's clock should move if sampled"


@pytest.mark.parametrize("data, message", [
    ([], "JSON object"),
    ({"enabled": "yes"}, "enabled"),
    ({"sensitivity": 0}, "sensitivity"),
    ({"sensitivity": 101}, "sensitivity"),
    ({"mask": [[[0, 0], [1, 0]]]}, "3-"),
    ({"mask": [[[0, 0], [1, 0], [2, 1]]]}, "0..1"),
    ({"mask": "not json"}, "JSON"),
])
def test_bad_settings_are_refused_with_the_field_named(data: object, message: str) -> None:
    with pytest.raises(BadSettings, match=message):
        settings_from_json(data)


def test_settings_accept_a_mask_as_json_text() -> None:
    settings = settings_from_json({"enabled": False, "sensitivity": 80,
                                   "mask": "[[[0, 0], [0.5, 0], [0.5, 0.5]]]",
                                   "updated_at": "2026-01-01T00:00:00+00:00"})
    assert settings == MotionSettings(False, 80, (((0.0, 0.0), (0.5, 0.0), (0.5, 0.5)),),
                                      "2026-01-01T00:00:00+00:00")


def test_the_worker_samples_five_times_a_second_whatever_the_frame_rate() -> None:
    motion = MotionWorker("porch", MotionSettings(), lambda event: None, threading.Event())
    image = np.zeros((72, 128, 3), np.uint8)
    taken = [t / 30 for t in range(300) if motion.offer(image, 100 + t / 30, 0.0)]  # 10 s at 30 fps
    assert 49 <= len(taken) <= 51
    assert all(0.19 < b - a < 0.25 for a, b in zip(taken, taken[1:]))
    motion.apply(MotionSettings(enabled=False))
    assert not motion.offer(image, 200.0, 0.0)  # off: nothing copied
