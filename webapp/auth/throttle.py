"""Failed-login throttling: too many failures for one account or one address lock it for a while."""

from __future__ import annotations

import datetime as dt
import threading
from collections import deque
from collections.abc import Callable, Iterable

THROTTLE_EXTENSION = "nvr.login_throttle"  # key of the app's throttle in app.extensions
# Bounds the memory an attacker cycling through addresses or names can make us hold.
MAX_TRACKED_KEYS = 10_000


class LoginThrottle:
    """Counts failed logins per key ("user:NAME", "addr:IP") in a sliding window and locks keys.

    A key with ``max_failures`` failures within ``window`` is locked for ``lock``; while locked,
    every login with that key is refused without checking the password. In memory, per process
    (waitress serves one process), behind a lock because waitress serves from several threads.
    """

    def __init__(self, clock: Callable[[], dt.datetime], max_failures: int = 5,
                 window: dt.timedelta = dt.timedelta(minutes=15),
                 lock: dt.timedelta = dt.timedelta(minutes=15)) -> None:
        self.clock = clock
        self.max_failures = max_failures
        self.window = window.total_seconds()
        self.lock_seconds = lock.total_seconds()
        self._failures: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}
        self._mutex = threading.Lock()

    def _now(self) -> float:
        return self.clock().timestamp()

    def retry_after(self, keys: Iterable[str]) -> float:
        """Return the seconds until none of ``keys`` is locked (0 when none is)."""
        now = self._now()
        with self._mutex:
            waits = [self._locked_until.get(key, 0.0) - now for key in keys]
        return max([0.0, *waits])

    def record_failure(self, keys: Iterable[str]) -> list[str]:
        """Count one failed login against each key; return the keys this failure locked."""
        now = self._now()
        newly_locked = []
        with self._mutex:
            if len(self._failures) >= MAX_TRACKED_KEYS:
                self._forget_old(now)
            for key in keys:
                failures = self._failures.setdefault(key, deque())
                failures.append(now)
                while failures and failures[0] <= now - self.window:
                    failures.popleft()
                if len(failures) >= self.max_failures:
                    self._locked_until[key] = now + self.lock_seconds
                    failures.clear()
                    newly_locked.append(key)
        return newly_locked

    def reset(self, key: str) -> None:
        """Forget the failures of ``key`` (after a successful login)."""
        with self._mutex:
            self._failures.pop(key, None)

    def _forget_old(self, now: float) -> None:
        for key in [k for k, v in self._failures.items() if not v or v[-1] <= now - self.window]:
            del self._failures[key]
        for key in [k for k, until in self._locked_until.items() if until <= now]:
            del self._locked_until[key]
        while len(self._failures) >= MAX_TRACKED_KEYS:  # still full: drop the oldest entries
            del self._failures[next(iter(self._failures))]
