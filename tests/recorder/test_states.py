"""The ffmpeg state machine: explicit edges, capped back-off, FAILED instead of a tight loop."""

import pytest

from recorder.supervise.states import InvalidTransition, ProcessStateMachine, RestartPolicy, State


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def machine():
    return ProcessStateMachine(RestartPolicy(initial=1, maximum=8, fail_after=5, startsecs=1,
                                             failed_retry=300), FakeClock())


def test_process_that_lives_is_running_and_restarts_after_the_initial_delay(machine):
    machine.starting()
    machine.clock.now += 5
    assert machine.maybe_running()
    assert machine.exited(1) == 1
    assert machine.state is State.BACKOFF


def test_quick_deaths_back_off_exponentially_with_a_cap_then_fail(machine):
    delays = []
    for _ in range(5):
        machine.starting()
        machine.clock.now += 0.1
        delays.append(machine.exited(1))
    assert delays == [1, 2, 4, 8, 300]
    assert machine.state is State.FAILED
    assert machine.restarts == 4


def test_a_good_run_resets_the_failure_count(machine):
    for _ in range(3):
        machine.starting()
        machine.exited(1)
    machine.starting()
    machine.clock.now += 2
    assert machine.exited(1) == 1
    assert machine.consecutive_failures == 1


def test_stop_while_running_ends_stopped_without_restart(machine):
    machine.starting()
    machine.clock.now += 2
    machine.maybe_running()
    machine.stopping()
    assert machine.state is State.STOPPING
    assert machine.exited(0) is None
    assert machine.state is State.STOPPED


def test_stop_while_backing_off_is_immediate(machine):
    machine.starting()
    machine.exited(1)
    machine.stopping()
    assert machine.state is State.STOPPED


def test_edges_that_do_not_exist_raise(machine):
    with pytest.raises(InvalidTransition):
        machine.transition(State.RUNNING)


def test_listeners_see_every_transition(machine):
    seen = []
    machine.listeners.append(lambda old, new, reason: seen.append((old, new)))
    machine.starting()
    machine.exited(1)
    assert seen == [(State.STOPPED, State.STARTING), (State.STARTING, State.BACKOFF)]


@pytest.mark.parametrize("before", ["stopped", "starting", "running", "backoff", "failed"])
def test_a_supervision_error_in_any_state_means_failed_and_a_retry(machine, before):
    """An exception in the hub (not an ffmpeg exit) is FAILED at once, wherever it struck."""
    seen = []
    if before != "stopped":
        machine.starting()
    if before == "running":
        machine.clock.now += 5
        machine.maybe_running()
    if before == "backoff":
        machine.clock.now += 0.1
        machine.exited(1)
    if before == "failed":
        assert machine.crashed("first") == 1
    machine.listeners.append(lambda old, new, reason: seen.append(new))
    delay = machine.crashed("OSError: [Errno 24] Too many open files")
    assert machine.state is State.FAILED and delay == machine.retry_in
    assert delay == (2 if before in ("backoff", "failed") else 1)  # the back-off, not 300 s
    assert seen[-1:] == ([] if before == "failed" else [State.FAILED])
    machine.starting()  # a retry, or a Restart, leaves FAILED
    assert machine.state is State.STARTING


def test_repeated_supervision_errors_slow_down_to_the_failed_retry(machine):
    delays = [machine.crashed("boom")]
    for _ in range(5):
        machine.starting()
        delays.append(machine.crashed("boom"))
    assert delays == [1, 2, 4, 8, 300, 300]


def test_a_supervision_error_during_a_stop_just_stops(machine):
    machine.starting()
    machine.stopping()
    assert machine.crashed("boom") is None
    assert machine.state is State.STOPPED
