"""The hub's own motion (cameras without our edge): keyframes of finished segments, real files."""

from __future__ import annotations

import datetime as dt
import subprocess
import threading
from pathlib import Path

import pytest

from nvrlib.ffmpeg_bin import ffmpeg_exe
from nvrlib.motion import MotionSettings
from recorder.store.motion import EventFields
from recorder.supervise.keyframe_motion import KeyframeMotion, SegmentJob, keyframes, sparse
from tests.e2e.test_motion_e2e import FPS, make_clip

START = dt.datetime(2026, 3, 1, 10, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 20-s still, noisy scene with a square moving from 8 s to 12 s, as MPEG-TS segments
    with a keyframe every second, and the same with one keyframe only (a long GOP)."""
    folder = tmp_path_factory.mktemp("keyframe-motion")
    clip = make_clip(folder / "scene.mp4", 20, 8.0, 12.0)
    out = {}
    for name, gop in (("gop1s", FPS), ("long-gop", 10 * FPS)):
        target = folder / f"{name}.ts"
        subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(clip),
                        "-c:v", "libx264", "-preset", "ultrafast", "-g", str(gop),
                        "-keyint_min", str(gop), "-sc_threshold", "0", "-f", "mpegts",
                        str(target)], check=True, timeout=120)
        out[name] = target
    return out


def run(motion: KeyframeMotion, *jobs: SegmentJob) -> None:
    motion.start()
    for job in jobs:
        assert motion.offer(job)
    motion.stop()


def test_keyframes_only_are_decoded_one_a_second(clips: dict[str, Path]) -> None:
    pictures = keyframes(clips["gop1s"], START)
    assert 19 <= len(pictures) <= 21 and not sparse(pictures, 20.0)
    walls = [wall - START.timestamp() for wall, _ in pictures]
    assert walls[0] == 0 and all(0.9 < b - a < 1.1 for a, b in zip(walls, walls[1:]))
    assert pictures[0][1].shape == (180, 320, 3)
    assert sparse(keyframes(clips["long-gop"], START), 20.0)


@pytest.mark.parametrize("clip", ["gop1s", "long-gop"])
def test_the_moving_span_becomes_one_event_with_its_picture(clips: dict[str, Path],
                                                            clip: str) -> None:
    found: list[EventFields] = []
    lock = threading.Lock()

    def report(event: EventFields) -> None:
        with lock:
            found.append(event)

    motion = KeyframeMotion(report)
    run(motion, SegmentJob("yard", clips[clip], START, 20.0, MotionSettings()))
    ended = [e for e in found if e.end is not None]
    assert len(ended) == 1, found
    [event] = ended
    assert event.event_key.startswith("hub-")
    start = (event.start - START).total_seconds()
    end = (event.end - START).total_seconds()
    assert 7.0 <= start <= 11.0 and 9.0 <= end <= 14.0, (start, end)
    assert event.snapshot is not None and event.snapshot[:2] == b"\xff\xd8"
    assert 0 < motion.cpu_share()["yard"] < 1


def test_motion_turned_off_looks_at_nothing(clips: dict[str, Path]) -> None:
    found: list[EventFields] = []
    motion = KeyframeMotion(found.append)
    run(motion, SegmentJob("yard", clips["gop1s"], START, 20.0, MotionSettings(enabled=False)))
    assert found == []
