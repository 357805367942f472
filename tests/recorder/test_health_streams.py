"""The streams health check: a camera whose source sends but which records nothing.

Hand-written fakes of the hub and its segmenters (real stats and state machine) on a fake
clock; the e2e side is tests/e2e/test_supervision_guard.py and test_alerts_e2e.py.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from recorder.config import HubConfig
from recorder.health.monitor import HealthMonitor
from recorder.supervise.segmenter import StreamStats
from recorder.supervise.states import ProcessStateMachine, RestartPolicy, State
from tests.support import aio

LIMIT = 2 * 2.0 + 2.0  # 2 x segment_seconds + stall_margin


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeSegmenter:
    """What the check reads of a segmenter, and a restart() that counts."""

    def __init__(self, clock: Clock, kind: str = "push") -> None:
        self.kind = kind
        self.machine = ProcessStateMachine(RestartPolicy(fail_after=1), clock)
        self.stats = StreamStats(created=clock.now)
        self.restarts = 0

    @property
    def state(self) -> State:
        return self.machine.state

    async def restart(self) -> None:
        self.restarts += 1


@dataclasses.dataclass
class FakeHub:
    config: HubConfig
    streams: dict[str, FakeSegmenter]
    alerts_raised: list[tuple[str, str | None, dict[str, Any]]] = dataclasses.field(
        default_factory=list)
    open_outages: dict[str, Any] = dataclasses.field(default_factory=dict)

    def segmenters(self) -> dict[str, FakeSegmenter]:
        return self.streams

    def raise_alert(self, kind: str, camera: str | None, details: dict[str, Any]) -> None:
        self.alerts_raised.append((kind, camera, details))


@pytest.fixture
def clock() -> Clock:
    return Clock()


def monitor_of(clock: Clock, **streams: FakeSegmenter) -> tuple[HealthMonitor, FakeHub]:
    hub = FakeHub(HubConfig(segment_seconds=2.0, stall_margin=2.0), streams)
    return HealthMonitor(hub, clock=clock), hub  # type: ignore[arg-type]


def check(monitor: HealthMonitor) -> dict[str, Any]:
    aio.run(monitor.check_streams())
    return monitor.checks["streams"].as_json()


def failed(segmenter: FakeSegmenter) -> FakeSegmenter:
    segmenter.machine.starting()
    segmenter.machine.crashed("OSError: [Errno 24] Too many open files")
    return segmenter


def test_a_failed_camera_whose_edge_sends_is_not_recording_restarted_once_and_named(clock):
    porch = failed(FakeSegmenter(clock))
    monitor, hub = monitor_of(clock, porch=porch)
    for _ in range(4):
        clock.now += 2.0
        porch.stats.last_data_at = clock.now  # the edge keeps sending
        result = check(monitor)
    assert result["ok"] is False and result["not_recording"] == ["porch"]
    assert "porch is not recording (no segment for 8 s, failed)" in result["detail"]
    assert porch.restarts == 1  # once per episode; the restart policy paces the rest
    assert [(kind, camera, details["state"]) for kind, camera, details in hub.alerts_raised] == \
        [("stalled", "porch", "failed")]
    porch.stats.last_segment_at = clock.now  # it records again: the episode ends
    result = check(monitor)
    assert result["not_recording"] == [] and "porch" not in monitor.stalled


def test_a_camera_that_records_or_whose_edge_is_silent_is_not_flagged(clock):
    recording, silent = FakeSegmenter(clock), failed(FakeSegmenter(clock))
    recording.machine.starting()
    monitor, hub = monitor_of(clock, porch=recording, yard=silent)
    clock.now += 3 * LIMIT
    recording.stats.last_data_at = recording.stats.last_segment_at = clock.now - 1
    silent.stats.last_data_at = clock.now - LIMIT  # the ingest stall timeout's to drop
    result = check(monitor)
    assert result["not_recording"] == [] and result["detail"] == "yard failed"
    assert not hub.alerts_raised and silent.restarts == 0


def test_a_pulled_camera_counts_from_its_run_start_only_while_running(clock):
    garden = FakeSegmenter(clock, kind="pull")
    monitor, _ = monitor_of(clock, garden=garden)
    clock.now += 10 * LIMIT  # unreachable for a long time: an outage, not "not recording"
    garden.machine.starting()
    clock.now += 1.5
    garden.machine.maybe_running()
    assert check(monitor)["not_recording"] == []
    clock.now += LIMIT
    assert check(monitor)["not_recording"] == ["garden"]  # RUNNING, connected, nothing written
    assert garden.restarts == 1


def test_an_ffmpeg_spawned_late_gets_a_whole_window_then_one_restart_per_episode(clock):
    # hundreds of edges reconnecting at once: this camera's ffmpeg only started 5 s after its
    # connection; it is not restarted before a whole window from its own start
    porch = FakeSegmenter(clock)
    monitor, hub = monitor_of(clock, porch=porch)
    clock.now += 5.0
    porch.machine.starting()
    spawned = clock.now
    while clock.now < spawned + LIMIT - 0.5:
        clock.now += 0.5
        porch.stats.last_data_at = clock.now
        assert check(monitor)["ok"] is True, clock.now - spawned
    clock.now += 1.0
    porch.stats.last_data_at = clock.now
    assert check(monitor)["not_recording"] == ["porch"] and porch.restarts == 1
    porch.machine.exited(-15, made_progress=False)  # the restart spawns a new ffmpeg ...
    porch.machine.starting()
    for _ in range(3 * int(LIMIT)):  # ... which never writes either: reported, not restarted
        clock.now += 1.0
        porch.stats.last_data_at = clock.now
        result = check(monitor)
        assert result["ok"] is False and result["not_recording"] == ["porch"]
    assert porch.restarts == 1 and len(hub.alerts_raised) == 1
