"""The state machine of one supervised ffmpeg process, after Supervisor's process.py."""

from __future__ import annotations

import dataclasses
import enum
import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)


class State(enum.Enum):
    """Where a stream's ffmpeg is in its life."""

    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    STOPPING = "stopping"
    FAILED = "failed"


_EDGES: dict[State, set[State]] = {
    State.STOPPED: {
        State.STARTING,  # STOPPED -> STARTING: a stream (re)starts
        State.FAILED,    # STOPPED -> FAILED: supervision failed before the first spawn
    },
    State.STARTING: {
        State.RUNNING,   # STARTING -> RUNNING: alive for `startsecs`
        State.BACKOFF,   # STARTING -> BACKOFF: died before `startsecs`
        State.STOPPING,  # STARTING -> STOPPING: stop asked while starting
        State.FAILED,    # STARTING -> FAILED: could not even be spawned, too often
    },
    State.RUNNING: {State.BACKOFF, State.STOPPING},  # died / stop asked
    State.BACKOFF: {State.STARTING, State.FAILED, State.STOPPED},  # FAILED: too many, or an error
    State.STOPPING: {State.STOPPED},
    State.FAILED: {State.STARTING, State.STOPPED},  # slow retry or manual restart / stop
}


class InvalidTransition(RuntimeError):
    """A state change that the machine does not allow (a bug in the caller)."""


@dataclasses.dataclass(frozen=True)
class RestartPolicy:
    """How quickly a dead ffmpeg is restarted, and when to give up for a while."""

    initial: float = 1.0
    maximum: float = 30.0
    fail_after: int = 10
    startsecs: float = 1.0
    failed_retry: float = 300.0

    def delay(self, failures: int) -> float:
        """Return the back-off before restart number ``failures`` (1-based), capped."""
        return min(self.initial * (2 ** max(failures - 1, 0)), self.maximum)


class ProcessStateMachine:
    """Tracks one process's state, restart count and back-off; the clock is injected."""

    def __init__(self, policy: RestartPolicy, clock: Callable[[], float],
                 name: str = "stream") -> None:
        self.policy = policy
        self.clock = clock
        self.name = name
        self.state = State.STOPPED
        self.since = clock()
        self.restarts = 0
        self.consecutive_failures = 0
        self.started_at: float | None = None
        self.last_exit: int | None = None
        self.retry_in: float | None = None  # the delay chosen when it last went FAILED
        self.listeners: list[Callable[[State, State, str], None]] = []

    def transition(self, new: State, reason: str = "") -> None:
        """Move to ``new`` if the edge exists, and tell the listeners."""
        old = self.state
        if new not in _EDGES[old]:
            raise InvalidTransition(f"{self.name}: {old.value} -> {new.value} is not allowed")
        self.state, self.since = new, self.clock()
        logger.debug("%s: %s -> %s %s", self.name, old.value, new.value, reason)
        for listener in self.listeners:
            listener(old, new, reason)

    def starting(self) -> None:
        """Record that a process is being spawned."""
        if self.started_at is not None:
            self.restarts += 1
        self.started_at = self.clock()
        self.transition(State.STARTING)

    def maybe_running(self) -> bool:
        """Promote STARTING to RUNNING once the process lived `startsecs`; tell if running."""
        if self.state is State.STARTING and self.started_at is not None:
            if self.clock() - self.started_at >= self.policy.startsecs:
                self.transition(State.RUNNING)
        return self.state is State.RUNNING

    def stopping(self) -> None:
        """Record that a stop was asked of a live process."""
        if self.state in (State.STARTING, State.RUNNING):
            self.transition(State.STOPPING)
        elif self.state in (State.BACKOFF, State.FAILED):
            self.transition(State.STOPPED, "stopped while waiting")

    def exited(self, returncode: int | None, made_progress: bool | None = None) -> float | None:
        """Record an exit; return the delay before a restart, or None if none is due.

        ``made_progress`` tells whether the run produced anything (a segment); a run that
        lived long but produced nothing (a camera that never answers) still counts as a
        failure. Without it, having reached RUNNING counts as progress.
        """
        self.last_exit = returncode
        if self.state is State.STOPPING:
            self.transition(State.STOPPED, f"exit {returncode}")
            return None
        self.maybe_running()
        progressed = self.state is State.RUNNING if made_progress is None else made_progress
        if progressed:
            self.consecutive_failures = 0
        self.consecutive_failures += 1
        if self.consecutive_failures >= self.policy.fail_after:
            if self.state is State.RUNNING:
                self.transition(State.BACKOFF, f"exit {returncode}")
            self.retry_in = self.policy.failed_retry
            self.transition(State.FAILED, f"{self.consecutive_failures} failures in a row")
            return self.policy.failed_retry
        self.transition(State.BACKOFF, f"exit {returncode}")
        return self.policy.delay(self.consecutive_failures)

    def crashed(self, reason: str) -> float | None:
        """Record that supervising the process failed (a hub error, not an exit): go FAILED.

        Returns the delay before the next try: the back-off while fewer than ``fail_after``
        tries failed in a row (a descriptor shortage passes), then ``failed_retry``; None if
        a stop was asked meanwhile.
        """
        if self.state is State.STOPPING:
            self.transition(State.STOPPED, reason)
            return None
        self.consecutive_failures += 1
        if self.consecutive_failures < self.policy.fail_after:
            delay = self.policy.delay(self.consecutive_failures)
        else:
            delay = self.policy.failed_retry
        self.retry_in = delay
        if self.state is State.RUNNING:
            self.transition(State.BACKOFF, reason)
        if self.state is not State.FAILED:
            self.transition(State.FAILED, reason)
        return delay
