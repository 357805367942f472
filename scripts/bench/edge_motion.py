"""The edge's CPU with motion detection on and off: same camera settings, same real hub.

Starts a real hub (`python -m recorder`, temp storage and SQLite catalog) and then, one after
the other, `python -m edge --camera test` with motion on (the default) and with `--no-motion`.
The test scene's box moves for 8 s of every 30 s: the detector compares every sample whatever
moves, and reports an event (with its snapshot) per burst. Each
edge's CPU (utime + stime from /proc/<pid>/stat) is sampled once its live stream is accepted
and again --seconds later; the figure is CPU seconds per wall second (1.0 = one core). With
--rounds N the two alternate N times and the medians count. The frames each edge dropped
between capture and encoder ("stream ended (N frames dropped)") are printed too: motion must
not add any. Then, in this process, the two steps of one sample at --size are timed: the small
copy the encoder thread takes before the overlay, and the detection in the motion thread.
The target is at most 10 % more CPU with motion on.

Run: .venv/bin/python scripts/bench/edge_motion.py [--seconds 30] [--rounds 3] [--size 1280x720]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from anywhere in the tree
sys.path.insert(0, str(Path(__file__).resolve().parent))

from edge_spool import ROOT, Process, bench_hub, cpu_seconds, edge_flags  # noqa: E402

from edge.capture import SyntheticSource  # noqa: E402
from edge.cli import parse_size  # noqa: E402
from edge.motion import Detector, handover_copy, small_copy  # noqa: E402

_DROPPED = re.compile(r"stream ended \((\d+) frames dropped\)")


def frames_dropped(lines: list[str]) -> int:
    """The frames an edge dropped between capture and encoder, from its log's last lines."""
    return sum(int(m[1]) for line in lines if (m := _DROPPED.search(line)))


def measure(port: int, work: Path, motion: bool, args: argparse.Namespace) -> tuple[float, int]:
    """Run one edge; return its CPU seconds per wall second and the frames it dropped."""
    argv = [sys.executable, "-m", "edge", "--hub", "127.0.0.1", "--port", str(port),
            "--location", "bench", "--camera", "test", "--name", "bench", "--fps", str(args.fps),
            "--size", args.size, "--bitrate", args.bitrate, "--spool-dir", str(work / "spool"),
            "--motion" if motion else "--no-motion"]
    edge = Process(argv, ROOT)
    try:
        edge.wait_line(r"accepted the stream|speaks protocol v2", 30)
        time.sleep(2.0)  # past the start-up (imports, first encoder) before the window
        cpu0, t0 = cpu_seconds(edge.proc.pid), time.monotonic()
        time.sleep(args.seconds)
        cpu = (cpu_seconds(edge.proc.pid) - cpu0) / (time.monotonic() - t0)
    finally:
        edge.stop()
    return cpu, frames_dropped(edge.lines)


def sample_costs(size: str, samples: int = 200) -> tuple[float, float]:
    """Milliseconds per sample: the encoder thread's copy, and the motion thread's work."""
    width, height = parse_size(size)
    source = SyntheticSource(width, height, 15.0)
    frames = [source.render(i * 3) for i in range(samples)]
    detector = Detector()
    started = time.perf_counter()
    copies = [handover_copy(frame) for frame in frames]  # as MotionWorker.offer does
    copy_ms = 1000 * (time.perf_counter() - started) / samples
    started = time.perf_counter()
    for copy in copies:  # as MotionWorker._process does
        detector.compare(small_copy(copy))
    return copy_ms, 1000 * (time.perf_counter() - started) / samples


def main() -> int:
    """Parse the flags, run the hub and the edges, print the figures side by side."""
    args = edge_flags(__doc__.splitlines()[0], seconds=30.0, rounds=3).parse_args()
    on, off, dropped_on, dropped_off = [], [], 0, 0
    with tempfile.TemporaryDirectory(prefix="edge-motion-bench-") as tmp, \
            bench_hub(Path(tmp)) as port:
        for _ in range(args.rounds):  # alternating, so a burst of load hits both sides
            cpu, dropped = measure(port, Path(tmp), True, args)
            on.append(cpu)
            dropped_on += dropped
            cpu, dropped = measure(port, Path(tmp), False, args)
            off.append(cpu)
            dropped_off += dropped
    copy_ms, detect_ms = sample_costs(args.size)
    a, b = statistics.median(on), statistics.median(off)
    print(f"edge CPU, --camera test --fps {args.fps} --size {args.size} --bitrate {args.bitrate}, "
          f"{args.seconds:g} s x {args.rounds}:")
    print(f"  motion on : {a:.3f} CPU s per s   ({', '.join(f'{x:.3f}' for x in on)}); "
          f"{dropped_on} frames dropped")
    print(f"  motion off: {b:.3f} CPU s per s   ({', '.join(f'{x:.3f}' for x in off)}); "
          f"{dropped_off} frames dropped")
    print(f"  ratio on/off: {a / b:.3f}: motion costs {100 * (a - b) / b:+.1f} % "
          "(target: at most +10 %)")
    print(f"  per sample (5 per second): copy {copy_ms:.2f} ms in the encoder thread, "
          f"detection {detect_ms:.2f} ms in the motion thread")
    return 0


if __name__ == "__main__":
    sys.exit(main())
