"""Retry pacing and outage logging shared by the uplink and by sources that can come back."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

INITIAL_DELAY = 0.5
MAX_DELAY = 30.0
JITTER = 0.2


class Backoff:
    """Exponential delays (0.5 s doubling to 30 s) with +-20 % jitter, so edges spread out."""

    def __init__(
        self,
        initial: float = INITIAL_DELAY,
        maximum: float = MAX_DELAY,
        jitter: float = JITTER,
        rng: random.Random | None = None,
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
        self._rng = rng or random.Random()
        self._tries = 0

    def next_delay(self, at_maximum: bool = False) -> float:
        """Return how long to wait before the next try; ``at_maximum`` skips the ramp."""
        base = self.maximum if at_maximum else min(self.maximum, self.initial * 2**self._tries)
        self._tries += 1
        return base * self._rng.uniform(1 - self.jitter, 1 + self.jitter)

    def reset(self) -> None:
        """Start again from the initial delay (after a success)."""
        self._tries = 0


class Outage:
    """Log an outage once when it starts and once when it ends, not once per retry."""

    def __init__(
        self,
        log: logging.Logger | logging.LoggerAdapter,
        what: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._what = what
        self._clock = clock
        self._since: float | None = None
        self._reasons: set[str] = set()

    @property
    def active(self) -> bool:
        """Tell whether an outage is going on."""
        return self._since is not None

    def failed(self, reason: str, level: int = logging.WARNING) -> None:
        """Record a failed try; log it only if it starts the outage or brings a new reason."""
        if self._since is None:
            self._since = self._clock()
            self._log.log(level, "%s unreachable, retrying: %s", self._what, reason)
        elif reason not in self._reasons:
            # A changed cause (refused -> 401, say) tells the user what to fix, so say it once.
            self._log.log(level, "%s still unreachable: %s", self._what, reason)
        else:
            self._log.debug("%s still unreachable: %s", self._what, reason)
        self._reasons.add(reason)

    def recovered(self) -> None:
        """Record a success; log the outage's length if there was one."""
        if self._since is None:
            return
        self._log.info(
            "%s reachable again after an outage of %.1f s", self._what, self._clock() - self._since
        )
        self._since = None
        self._reasons.clear()
