"""CPU of the hub and the web app for one live camera with 0, 1, 4 and 16 viewers, and the delay.

A clock pusher (tests/support/clock_frames.py: 320x240, 15 fps, about 1 Mbit/s, every frame
carrying its creation time) pushes one camera to a real hub; a real web app serves its live
fMP4 stream; N viewers read it (tests/support/live_viewer.py). For each N it measures, over a
window, the CPU of the hub (its Python process and its ffmpeg children: the segmenter and, while
someone watches, the live tap) and of the web app, and the median delay of the frames one viewer
decoded (creation to arrival). Target: 16 viewers cost at most twice what one costs.

    .venv/bin/python scripts/bench/live_viewers.py                 # 0, 1, 4, 16; 15-s windows
    .venv/bin/python scripts/bench/live_viewers.py --viewers 0,1,16 --seconds 10
    .venv/bin/python scripts/bench/live_viewers.py --protocol 3   # pushed as our edge does

``--protocol 1`` (the default) pushes with a stock ffmpeg, which the hub relays and copies to
the live tap; ``--protocol 3`` with the edge's own client (edge/direct_uplink.py), whose socket
the hub's ffmpeg reads and whose live view follows ffmpeg's open segment file.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.browser.system import running_clock_system  # noqa: E402
from tests.support.live_viewer import LiveViewer  # noqa: E402
from tests.support.procs import Hub, LoggedProcess, wait_for  # noqa: E402

CAMERA = "bench"
USER = ("bench", "bench-password-1")
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def children(pid: int) -> list[int]:
    """The pids of a process's children (the hub's ffmpegs)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found += [int(p) for p in task.read_text().split()]
    return found


def tree_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of a process and each of its children, by pid."""
    return {p: cpu_seconds(p) for p in [pid, *children(pid)]}


def used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two samples (children that came or went count from 0)."""
    return sum(after[p] - before.get(p, 0.0) for p in after)


def session_cookie(base: str) -> str:
    """Log in with the form; return the session as a Cookie header value."""
    import requests

    session = requests.Session()
    page = session.get(f"{base}/auth/login").text
    token = page.split('name="csrf_token"', 1)[1].split('value="', 1)[1].split('"', 1)[0] \
        if 'name="csrf_token"' in page else None
    form = {"username": USER[0], "password": USER[1], **({"csrf_token": token} if token else {})}
    session.post(f"{base}/auth/login", data=form).raise_for_status()
    return "; ".join(f"{c.name}={c.value}" for c in session.cookies)


def measure(hub: Hub, web: LoggedProcess, url: str, cookie: str, count: int,
            seconds: float) -> tuple[float, float, float | None]:
    """Hub CPU %, web app CPU % and median delay (ms) with ``count`` viewers."""
    viewers = [LiveViewer(url, cookie, decode=(i == 0)) for i in range(count)]
    try:
        if viewers:
            wait_for(lambda: all(len(v.frames) > 15 for v in viewers), 30, "every viewer playing")
        time.sleep(2.0)  # settle: the tap started, every viewer caught up
        assert hub.process is not None
        hub_before, web_before = tree_cpu(hub.process.proc.pid), tree_cpu(web.proc.pid)
        started = time.time()
        time.sleep(seconds)
        hub_used = used(hub_before, tree_cpu(hub.process.proc.pid))
        web_used = used(web_before, tree_cpu(web.proc.pid))
        delays = [d for d in viewers[0].delays_since(started) if d >= 0] if viewers else []
        errors = [v.error for v in viewers if v.error]
        if errors:
            raise SystemExit(f"viewers failed: {errors[:3]}")
        return (100 * hub_used / seconds, 100 * web_used / seconds,
                statistics.median(delays) if delays else None)
    finally:
        for viewer in viewers:
            viewer.stop()


def main() -> int:
    """Run the benchmark and print one line per number of viewers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", default="0,1,4,16", help="numbers of viewers (0,1,4,16)")
    parser.add_argument("--seconds", type=float, default=15.0, help="window per count (15)")
    parser.add_argument("--protocol", type=int, choices=(1, 3), default=1,
                        help="how the camera is pushed: 1 a stock ffmpeg (default), 3 as our "
                        "edge does")
    args = parser.parse_args()
    counts = [int(n) for n in args.viewers.split(",")]
    direct = (CAMERA,) if args.protocol == 3 else ()
    with tempfile.TemporaryDirectory(prefix="live-bench-") as tmp, \
            running_clock_system(Path(tmp), (CAMERA,), USER, threads=32,
                                 direct=direct) as (hub, web, base):
        cookie = session_cookie(base)
        url = f"{base}/live/{CAMERA}/live.mp4"
        wait_for(lambda: (hub.storage / CAMERA).exists(), 30, "the camera recording")
        print(f"{'viewers':>7} {'hub CPU %':>10} {'web CPU %':>10} {'total %':>8} "
              f"{'delay ms':>9}")
        results = {}
        for count in counts:
            hub_cpu, web_cpu, delay = measure(hub, web, url, cookie, count, args.seconds)
            results[count] = hub_cpu + web_cpu
            shown = f"{delay:9.0f}" if delay is not None else f"{'-':>9}"
            print(f"{count:7d} {hub_cpu:10.1f} {web_cpu:10.1f} {hub_cpu + web_cpu:8.1f} {shown}",
                  flush=True)
            if count == 0:  # nobody watches: let the hub stop its tap before the next count
                time.sleep(0.5)
        if 0 in results and 1 in results and 16 in results:
            one, sixteen = results[1] - results[0], results[16] - results[0]
            print(f"live view cost over recording alone: 1 viewer {one:.1f} %, 16 viewers "
                  f"{sixteen:.1f} % ({sixteen / one if one > 0 else float('nan'):.1f} x; "
                  f"target at most 2 x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
