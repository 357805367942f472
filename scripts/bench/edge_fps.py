"""Edge encoding speed next to bare ffmpeg encoding the same frames with the same x264 settings.

Edge side: the synthetic test source rendered as fast as it goes (not paced), the overlay
burned in, BGR -> I420 with OpenCV, libx264 through PyAV and MPEG-TS muxed into memory: the
edge's own `edge.encoder.Encoder`, so its settings are the edge's exact settings.

ffmpeg side: the same N frames, pre-rendered with the same overlay into a raw file (bgr24 by
default, so ffmpeg does the colour conversion the edge does too; `--raw-format yuv420p` hands it
I420 and measures the encoder alone; the edge's loop still renders the pattern, the overlay and
the I420 conversion, which that side gets for free), encoded by `ffmpeg_exe()` with libx264 and the options of
`edge.encoder.codec_options` plus the same GOP, B-frames, bitrate and thread count, muxed to
MPEG-TS in /dev/null. Its time is ffmpeg's own `-benchmark` rtime (the transcode, without process
start-up); the edge's time covers making the encoder, every frame, and the flush. Each side
runs --repeat times (5), alternating with the other, and its best run counts, which damps
noise from other processes.

Threads: both sides run libx264 with one thread (`--threads 1`), and the whole benchmark
(this process and the ffmpeg it starts) is pinned to one CPU (`--cpu`, default the first one
this process may use; `--cpu -1` does not pin). libx264's threading speed-up depends on the
core count and on other load, and ffmpeg 7+ also runs reading, conversion, encoding and muxing
in threads of their own, which would let it borrow a second core that the edge's camera thread
(capture -> overlay -> convert -> encode, one per camera) does not get. An edge with several
cameras runs one encoder per camera anyway, so one core per encoder is the comparison that says
what a core can carry.

Run: .venv/bin/python scripts/bench/edge_fps.py [--frames 300] [--size 1280x720]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from anywhere in the tree

from edge.capture import SyntheticSource  # noqa: E402
from edge.cli import parse_bitrate, parse_size  # noqa: E402
from edge.encoder import Encoder, EncoderSettings, codec_options  # noqa: E402
from edge.overlay import Overlay  # noqa: E402
from nvrlib.ffmpeg_bin import ffmpeg_exe  # noqa: E402

LOCATION = "driveway"
CAMERA = "driveway-test"
WALL = 1_795_467_600.0  # a fixed clock: both sides burn in identical text


def edge_fps(settings: EncoderSettings, frames: int) -> tuple[float, int]:
    """Return the edge pipeline's frames per second and the TS bytes it produced."""
    source = SyntheticSource(settings.width, settings.height, settings.fps)
    overlay = Overlay(LOCATION, CAMERA)
    started = time.perf_counter()
    encoder = Encoder(settings, start_monotonic=0.0)
    size = 0
    for i in range(frames):
        image = source.render(i)
        overlay.draw(image, WALL + i / settings.fps)
        size += len(encoder.encode(image, i / settings.fps))
    size += len(encoder.finish())
    return frames / (time.perf_counter() - started), size


def render_raw(settings: EncoderSettings, frames: int, path: Path, raw_format: str) -> None:
    """Write the same frames (with overlay) as the edge encodes to ``path`` as raw video."""
    source = SyntheticSource(settings.width, settings.height, settings.fps)
    overlay = Overlay(LOCATION, CAMERA)
    with path.open("wb") as out:
        for i in range(frames):
            image = source.render(i)
            overlay.draw(image, WALL + i / settings.fps)
            if raw_format == "yuv420p":
                image = cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420)
            out.write(image.tobytes())


def ffmpeg_command(settings: EncoderSettings, raw: Path, raw_format: str) -> list[str]:
    """Return the ffmpeg command that encodes ``raw`` exactly as the edge's encoder does."""
    x264 = [arg for key, value in codec_options(settings).items() for arg in (f"-{key}", value)]
    return [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-benchmark", "-loglevel", "info",
        "-f", "rawvideo", "-pix_fmt", raw_format, "-s", f"{settings.width}x{settings.height}",
        "-r", f"{settings.fps:g}", "-i", str(raw),
        "-c:v", "libx264", *x264, "-g", str(settings.gop), "-bf", "0",
        "-b:v", str(settings.bitrate), "-threads", str(settings.threads), "-pix_fmt", "yuv420p",
        "-f", "mpegts", "-mpegts_copyts", "1", "-y", "/dev/null",
    ]


def ffmpeg_seconds(command: list[str]) -> float:
    """Run ffmpeg and return its -benchmark rtime (wall time if it printed none)."""
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"ffmpeg failed:\n{done.stderr[-2000:]}")
    match = re.search(r"rtime=([\d.]+)s", done.stderr)
    return float(match.group(1)) if match else wall


def compare(
    settings: EncoderSettings, frames: int, raw_format: str, repeat: int
) -> tuple[float, float, int]:
    """Return the best edge fps, the best ffmpeg fps and the edge's TS size over ``repeat`` rounds."""
    best_edge, best_bare, ts_bytes = 0.0, 0.0, 0
    with tempfile.TemporaryDirectory() as folder:
        raw = Path(folder) / "frames.raw"
        render_raw(settings, frames, raw, raw_format)
        command = ffmpeg_command(settings, raw, raw_format)
        # Alternate the sides, so a burst of load from elsewhere does not favour one of them.
        for _ in range(repeat):
            edge, ts_bytes = edge_fps(settings, frames)
            best_edge = max(best_edge, edge)
            best_bare = max(best_bare, frames / ffmpeg_seconds(command))
    return best_edge, best_bare, ts_bytes


def main(argv: list[str] | None = None) -> int:
    """Run both sides and print their frames per second and the ratio."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--size", default="1280x720")
    p.add_argument("--fps", type=float, default=15.0)
    p.add_argument("--bitrate", default="2M")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--raw-format", choices=["bgr24", "yuv420p"], default="bgr24")
    p.add_argument("--repeat", type=int, default=5, help="runs per side; the best counts")
    p.add_argument("--cpu", type=int, default=min(os.sched_getaffinity(0)),
                   help="CPU to pin both sides to (-1: no pinning)")
    args = p.parse_args(argv)
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})  # inherited by the ffmpeg child
    width, height = parse_size(args.size)
    settings = EncoderSettings(width=width, height=height, fps=args.fps,
                               bitrate=parse_bitrate(args.bitrate), threads=args.threads)
    edge, bare, ts_bytes = compare(settings, args.frames, args.raw_format, args.repeat)
    print(f"{args.frames} frames {width}x{height}, {settings.preset}/{settings.tune}, "
          f"g={settings.gop}, {settings.bitrate} b/s, threads={settings.threads}, "
          f"cpu={'any' if args.cpu < 0 else args.cpu}, best of {args.repeat}")
    print(f"edge (synthetic+overlay+I420+PyAV libx264+TS): {edge:7.1f} fps  ({ts_bytes} bytes)")
    print(f"bare ffmpeg libx264 ({args.raw_format} in, TS out):      {bare:7.1f} fps")
    print(f"ratio edge/ffmpeg: {edge / bare:.2f} (target >= 0.85)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
