"""Shared ticks of the event loop's clock: work that is not urgent waits for the next one.

On a small machine the hub's CPU goes more into waking up than into the work a wake-up does
(scripts/bench/hub_cpu.py: a cold pass costs ten times a warm one). Timers that fall on
multiples of one period of the loop's clock run in the same turn of the loop, so the relay of
every connection (recorder/ingest/server.py) and the reading of every ffmpeg's counters
(recorder/supervise/ffmpeg.py, ProgressPipe) share one wake-up instead of one each.
"""

from __future__ import annotations


def until_tick(now: float, period: float) -> float:
    """Seconds from ``now`` to the next multiple of ``period`` (0 for a period of 0 or less)."""
    if period <= 0:
        return 0.0
    return period - now % period
