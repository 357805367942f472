"""The ingest port's limits (recorder/ingest/guard.py), with a fake clock and real TS bytes."""

from __future__ import annotations

import asyncio
import errno
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.config import build_config
from recorder.errors import ConfigError, IngestRejected
from recorder.hub import ingest_limits
from recorder.ingest.guard import (
    AcceptErrorLog, ConnectionGuard, FdBudget, IngestLimits, NewNameLimiter, PayloadCounter,
    QuietLog, VideoWatchdog, deadline, payload_of, source_of,
)
from tests.support.media import encoded_ts
from tests.support import aio


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def packet(pid: int, control: int = 1, adaptation: int = 0, sync: int = 0x47) -> bytes:
    """One 188-byte MPEG-TS packet on ``pid``; ``control`` is adaptation_field_control."""
    head = bytes([sync, (pid >> 8) & 0x1F, pid & 0xFF, (control << 4)])
    if control & 0x2:
        head += bytes([adaptation]) + b"\xff" * adaptation
    return (head + b"\x00" * 188)[:188]


@pytest.fixture(scope="module")
def real_ts() -> bytes:
    """Two seconds of H.264 in MPEG-TS from the real encoder."""
    return encoded_ts(2)


# -- what counts as video -------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "payload"), [
    (packet(0x100), 184),
    (packet(0x100, control=3, adaptation=7), 184 - 1 - 7),
    (packet(0x100, control=2, adaptation=183), 0),  # adaptation only: no payload
    (packet(0x1FFF), 0),  # null packet (padding)
    (packet(0x0000), 0),  # PAT
    (packet(0x0011), 0),  # SDT
    (packet(0x100, control=0), 0),  # reserved: no payload
    (packet(0x100, sync=0x00), 0),  # out of sync
])
def test_only_payload_of_elementary_streams_counts_as_video(raw: bytes, payload: int) -> None:
    assert payload_of(raw[:5]) == payload


@given(data=st.data())
@settings(max_examples=200, deadline=None)
def test_payload_count_does_not_depend_on_how_the_stream_is_cut(data: st.DataObject) -> None:
    """Whatever the chunking, the counter sees the same packets as in one piece."""
    packets = data.draw(st.lists(st.sampled_from([
        packet(0x100), packet(0x1FFF), packet(0x0), packet(0x101, control=3, adaptation=20),
        packet(0x100, control=2, adaptation=183)]), max_size=30))
    stream = b"".join(packets) + data.draw(st.binary(max_size=187))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    whole = PayloadCounter()
    whole.feed(stream)
    pieces = PayloadCounter()
    for start, end in zip([0, *cuts], [*cuts, len(stream)]):
        pieces.feed(stream[start:end])
    assert pieces.total == whole.total == sum(payload_of(p[:5]) for p in packets)


def test_a_real_encoder_stream_is_almost_all_video(real_ts: bytes) -> None:
    counter = PayloadCounter()
    counter.feed(real_ts)
    assert counter.total > 0.8 * len(real_ts)  # the rest: headers, tables, stuffing


# -- the floor of real video ----------------------------------------------------------------

def test_a_stream_of_null_packets_is_stalled_at_the_window_end() -> None:
    clock = FakeClock()
    watchdog = VideoWatchdog(min_bytes=2048, window=15.0, clock=clock)
    for _ in range(14):
        clock.now += 1
        watchdog.feed(packet(0x1FFF) * 50)
        assert watchdog.starved() is None
    assert watchdog.read_timeout(15.0) == pytest.approx(1.0)  # the read waits no longer
    clock.now += 1
    assert "sent 0 bytes of video in 15 s" in watchdog.starved()


def test_one_packet_every_twelve_seconds_does_not_hold_a_camera() -> None:
    clock = FakeClock()
    watchdog = VideoWatchdog(min_bytes=2048, window=15.0, clock=clock)
    watchdog.feed(packet(0x100))
    clock.now += 12
    watchdog.feed(packet(0x100))
    assert watchdog.starved() is None
    assert watchdog.read_timeout(15.0) == pytest.approx(3.0)
    clock.now += 3
    assert "sent 368 bytes of video" in watchdog.starved()


def test_a_real_stream_rolls_from_window_to_window(real_ts: bytes) -> None:
    clock = FakeClock()
    watchdog = VideoWatchdog(min_bytes=2048, window=15.0, clock=clock)
    for _ in range(100):
        clock.now += 0.5
        watchdog.feed(real_ts[:4 * 188])
        assert watchdog.starved() is None
    assert watchdog.read_timeout(15.0) == 15.0  # this window already has enough video


# -- connections ----------------------------------------------------------------------------

@pytest.mark.parametrize(("peername", "source"), [
    (("10.0.0.7", 5555), "10.0.0.7"),
    (("2001:db8:1:2:aaaa::1", 5555, 0, 0), "2001:db8:1:2::/64"),  # a host owns its /64
    (("2001:db8:1:2:bbbb::9", 5555, 0, 0), "2001:db8:1:2::/64"),
    (("::ffff:10.0.0.7", 5555, 0, 0), "10.0.0.7"),
    (("fe80::1%eth0", 5555, 0, 2), "fe80::/64"),
    (None, "?"),
])
def test_a_source_is_an_ipv4_address_or_an_ipv6_64(peername: object, source: str) -> None:
    assert source_of(peername) == source


def guard_with(fds_in_use: int, **limits: int) -> tuple[ConnectionGuard, FakeClock]:
    clock = FakeClock()
    budget = FdBudget(1024, limits.get("fd_reserve", 256), count=lambda: fds_in_use, clock=clock)
    return ConnectionGuard(IngestLimits(**limits), fd_limit=1024, budget=budget), clock


def test_connections_per_source_are_capped() -> None:
    guard, _ = guard_with(20, max_connections_per_source=2)
    assert guard.open("10.0.0.1", 21) is None
    assert guard.open("10.0.0.1", 22) is None
    refusal = guard.open("10.0.0.1", 23)
    assert refusal.status == 429 and refusal.response().startswith(b"HTTP/1.1 429 Too Many")
    assert guard.open("10.0.0.2", 23) is None  # another source is not affected
    guard.close("10.0.0.1")
    assert guard.open("10.0.0.1", 22) is None


def test_connections_in_total_are_capped() -> None:
    guard, _ = guard_with(20, max_connections=3)
    assert [guard.open(f"10.0.0.{i}", 20 + i) for i in range(3)] == [None] * 3
    assert guard.open("10.0.0.9", 30).status == 503


def test_the_descriptor_reserve_is_never_given_to_a_connection() -> None:
    guard, clock = guard_with(700, fd_reserve=256)
    kept = [guard.open(f"10.0.{i // 200}.{i % 200}", 700 + i) for i in range(100)]
    assert kept.count(None) == 1024 - 256 - 700  # the rest would eat into the reserve
    assert "descriptors for recording" in kept[-1].reason
    clock.now += 1  # a fresh count: the flood's connections are closed now
    guard.budget._count = lambda: 40
    assert guard.open("10.9.9.9", 41) is None


def test_a_high_descriptor_number_shows_descriptors_are_in_use() -> None:
    guard, _ = guard_with(10)
    assert guard.open("10.0.0.1", 900).status == 503


# -- deadlines ------------------------------------------------------------------------------

def test_a_deadline_covers_the_whole_phase_not_each_read() -> None:
    async def trickle() -> None:
        async with deadline(0.3, "the request head"):
            for _ in range(100):
                await asyncio.sleep(0.05)  # each "read" is quick; together they are not

    with pytest.raises(IngestRejected) as caught:
        aio.run(trickle())
    assert caught.value.status == 408 and "within 0.3 s" in caught.value.reason


# -- new names ------------------------------------------------------------------------------

def test_new_camera_names_are_limited_per_source_and_window() -> None:
    clock = FakeClock()
    limiter = NewNameLimiter(per_source=3, window=600, clock=clock)
    assert [limiter.allow("10.0.0.66", f"fake{i}") for i in range(5)] == [True] * 3 + [False] * 2
    assert limiter.allow("10.0.0.66", "fake1") is True  # a name it already brought in
    assert limiter.allow("10.0.0.7", "porch") is True  # another source
    clock.now += 601
    assert limiter.allow("10.0.0.66", "fake9") is True


# -- logs -----------------------------------------------------------------------------------

def test_rejections_are_logged_a_few_per_source_then_counted(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    log = logging.getLogger("test.quiet")
    quiet = QuietLog(log, per_source=2, clock=clock)
    with caplog.at_level(logging.INFO, "test.quiet"):
        for i in range(500):
            quiet(logging.WARNING, f"127.0.0.{2 + i % 10} 408", "rejected %d", i)
        clock.now += 6  # the burst is over
        quiet.burst.expire()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 21
    assert lines[-1].startswith("480 more ingest log lines like the above left out")


def test_a_flood_from_many_sources_is_logged_in_at_most_a_few_dozen_lines(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    log = logging.getLogger("test.quiet")
    quiet = QuietLog(log, clock=clock)
    with caplog.at_level(logging.INFO, "test.quiet"):
        for minute in range(10):
            for i in range(2000):
                quiet(logging.WARNING, f"10.{i // 250}.{i % 250}.1 408", "rejected %d", i)
                clock.now += 0.03
    assert len(caplog.records) <= 10 * 51


def test_failed_accepts_are_logged_once_per_burst_with_a_count(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    handler = AcceptErrorLog(clock=clock)
    loop = asyncio.new_event_loop()
    try:
        context = {"message": AcceptErrorLog.MESSAGE, "exception": OSError(errno.EMFILE, "x")}
        with caplog.at_level(logging.INFO, "recorder.ingest.guard"):
            for _ in range(1000):
                handler(loop, context)
                clock.now += 0.01
            clock.now += 6
            handler.burst.expire()
    finally:
        loop.close()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["cannot accept ingest connections: Too many open files; asyncio retries "
                     "every second (further failures are counted)",
                     "999 more failed accepts of ingest connections in 10 s"]


# -- config ---------------------------------------------------------------------------------

def test_ingest_limit_defaults_are_the_documented_ones() -> None:
    config = build_config({}, {})
    assert ingest_limits(config) == IngestLimits()
    assert (config.new_cameras_per_source, config.new_camera_window) == (3, 600.0)


def test_ingest_limits_are_read_and_checked() -> None:
    config = build_config({"max_connections_per_source": 4, "head_timeout": 2.5}, {})
    assert config.max_connections_per_source == 4 and config.head_timeout == 2.5
    with pytest.raises(ConfigError, match="fd_reserve: must be between 0"):
        build_config({"fd_reserve": -1}, {})
