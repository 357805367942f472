#!/usr/bin/env python3
"""The hub's CPU per camera for its own motion detection (cameras without our edge).

Makes a --seconds long 1280x720 test clip at --fps (ffmpeg's testsrc2: something moves in every
frame, the worst case) twice, with a keyframe every second (a camera's usual GOP) and with
ffmpeg's default 250-frame GOP (a stock pusher), cuts each into 10-s MPEG-TS segments as the
hub records them, then, side by side in one run:

  recording   `ffmpeg -i clip.ts -c copy -f segment ...`: what recording the camera costs the
              hub's ffmpeg (child CPU from getrusage), the yardstick;
  hub motion  recorder.supervise.keyframe_motion on every segment, in this process (CPU from
              time.process_time): keyframes only with the 1-s GOP, every frame decoded and one
              picture a second kept with the long one.

It prints CPU seconds per camera-minute for each, the share of one core per camera, and the ratio
of hub motion to recording. Run: .venv/bin/python scripts/bench/hub_motion.py [--seconds 60]
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from anywhere in the tree

from nvrlib.ffmpeg_bin import ffmpeg_exe  # noqa: E402
from nvrlib.motion import MotionSettings  # noqa: E402
from recorder.supervise.keyframe_motion import KeyframeMotion, SegmentJob  # noqa: E402

SEGMENT_SECONDS = 10
START = dt.datetime(2026, 3, 1, 10, 0, tzinfo=dt.timezone.utc)


def make_clip(folder: Path, seconds: int, fps: int, gop: int | None) -> Path:
    """Encode the test clip (ultrafast, as a camera or a pusher would have done)."""
    target = folder / f"clip-gop{gop or 'default'}.ts"
    argv = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
            f"testsrc2=size=1280x720:rate={fps}", "-t", str(seconds), "-c:v", "libx264",
            "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    if gop:
        argv += ["-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0"]
    subprocess.run([*argv, "-f", "mpegts", str(target)], check=True, timeout=600)
    return target


def record(clip: Path, folder: Path) -> tuple[float, list[Path]]:
    """Cut the clip into segments with ffmpeg -c copy; return its CPU seconds and the files."""
    folder.mkdir()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(clip),
                    "-c", "copy", "-f", "segment", "-segment_time", str(SEGMENT_SECONDS),
                    "-reset_timestamps", "0", str(folder / "%06d.ts")], check=True, timeout=600)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, sorted(folder.glob("*.ts"))


def hub_motion(segments: list[Path]) -> tuple[float, int]:
    """Run the hub's motion on every segment (in order); return its CPU seconds and events."""
    events: list[object] = []
    motion = KeyframeMotion(events.append)
    began = time.process_time()
    motion.start()
    for index, path in enumerate(segments):
        start = START + dt.timedelta(seconds=index * SEGMENT_SECONDS)
        while not motion.offer(SegmentJob("bench", path, start, SEGMENT_SECONDS,
                                          MotionSettings())):
            time.sleep(0.05)
    motion.stop(timeout=600)
    return time.process_time() - began, len(events)


def main() -> None:
    """Measure and print the figures (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--fps", type=int, default=25)
    args = parser.parse_args()
    minutes = args.seconds / 60
    print(f"1280x720 at {args.fps} fps, {args.seconds} s per clip, {SEGMENT_SECONDS}-s segments")
    print(f"{'stream':<26} {'recording':>12} {'hub motion':>12} {'motion, % core':>15} "
          f"{'ratio':>6}")
    with tempfile.TemporaryDirectory(prefix="hub-motion-") as tmp:
        folder = Path(tmp)
        for label, gop in (("keyframe every 1 s", args.fps), ("default GOP (250 frames)", None)):
            clip = make_clip(folder, args.seconds, args.fps, gop)
            recording, segments = record(clip, folder / f"seg-{gop or 'default'}")
            motion, events = hub_motion(segments)
            per_min_rec, per_min_motion = recording / minutes, motion / minutes
            print(f"{label:<26} {per_min_rec:>9.3f} s/m {per_min_motion:>9.3f} s/m "
                  f"{100 * motion / args.seconds:>14.2f}% {per_min_motion / per_min_rec:>6.1f}"
                  f"   ({events} event reports)")
    print("s/m: CPU seconds per camera-minute; ratio: hub motion / recording")


if __name__ == "__main__":
    main()
