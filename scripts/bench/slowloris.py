"""Measure the web app under a slowloris: N slow connections, then /api/v1/health probes.

    .venv/bin/python scripts/bench/slowloris.py --port 8080 [--count 200] [--sources 127.0.0.1]
                                                [--seconds 20]

Prints, every second, the open slow connections and the probe's time (from 127.0.0.200, an
address the flood does not use). Start the web app first (python -m webapp --host 127.0.0.1).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.slowloris import Slowloris, probe  # noqa: E402


def main() -> int:
    """Run the flood for --seconds and print what a probe meanwhile gets."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, default=200)
    p.add_argument("--sources", default="127.0.0.1", help="comma-separated source addresses")
    p.add_argument("--seconds", type=float, default=20)
    args = p.parse_args()
    url = f"http://127.0.0.1:{args.port}/api/v1/health"
    worst = 0.0
    with Slowloris(args.port, args.count, args.sources.split(",")) as flood:
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            took = probe(url, source="127.0.0.200", timeout=5)
            worst = max(worst, took)
            print(f"slow connections open {flood.alive():4d}, refused {flood.refused:5d}; "
                  f"health {took:6.3f} s", flush=True)
            time.sleep(1)
    print(f"worst health answer: {worst:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
