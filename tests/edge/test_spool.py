"""The spool keeps what the hub has not acknowledged, within its size, dropping oldest first."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.encoder import Chunk
from edge.spool import Spool, SpoolError

STEP = 6000  # 15 fps in 90 kHz ticks
FPS_SECONDS = STEP / 90_000


def frames(spool: Spool, epoch: int, start: int, count: int, size: int = 100,
           key_every: int = 15, boundary_at: int | None = None) -> int:
    """Append ``count`` frames (keyframe every ``key_every``); return the next PTS."""
    pts = start
    for i in range(count):
        key = i % key_every == 0 or i == boundary_at
        spool.append(epoch, Chunk(bytes([i % 256]) * size, pts, key), boundary=i == boundary_at)
        pts += STEP
    return pts


def test_files_are_cut_at_keyframes_and_tile_the_timeline(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 10**9, file_seconds=2.0)
    frames(spool, 1000, 0, 150)  # 10 s, a keyframe each second
    spool.close_timeline()
    files = spool.files()
    assert [f.start for f in files] == [0, 180_000, 360_000, 540_000, 720_000]
    assert all(a.end == b.start for a, b in zip(files, files[1:]))
    assert files[-1].end == 150 * STEP and sum(f.seconds for f in files) == pytest.approx(10.0)
    assert sum(f.size for f in files) == spool.size == 150 * 100


def test_a_boundary_cuts_a_file_where_a_live_request_starts(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 10**9, file_seconds=4.0)
    frames(spool, 1000, 0, 40, key_every=1000, boundary_at=22)
    spool.close_timeline()
    assert [f.start for f in spool.files()] == [0, 22 * STEP]


def test_ack_deletes_only_whole_files_below_the_durable_pts_of_that_request(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 10**9, file_seconds=1.0)
    frames(spool, 1000, 0, 75)  # five 1-s files
    spool.close_timeline()
    assert spool.ack(1000, 90_000, 250_000) == 1  # file [1 s, 2 s): the next is not all below
    assert spool.ack(2000, 0, 10**9) == 0  # another timeline
    assert [f.start for f in spool.files()] == [0, 180_000, 270_000, 360_000]
    assert not list(tmp_path.glob("1000-90000-*"))


def test_an_ack_for_the_open_file_applies_when_it_closes(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 10**9, file_seconds=10.0)
    spool.live_begin(1000, 0)
    frames(spool, 1000, 0, 20)
    spool.ack(1000, 0, 30 * STEP)
    spool.close_timeline()
    assert spool.files() == [] and spool.size == 0 and not list(tmp_path.glob("*.ts"))


def test_overflow_drops_the_oldest_files_and_counts_their_seconds(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 3 * 1500, file_seconds=1.0)  # room for three 1-s files
    frames(spool, 1000, 0, 75)  # five
    assert spool.size <= 3 * 1500
    spool.close_timeline()
    assert [f.start for f in spool.files()] == [180_000, 270_000, 360_000]
    assert spool.dropped_total == pytest.approx(2.0)
    assert spool.take_dropped() == pytest.approx(2.0) and spool.take_dropped() == 0.0


def test_footage_out_on_a_live_request_is_not_backfilled_nor_counted_as_dropped(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path, 10**9, file_seconds=1.0)
    frames(spool, 1000, 0, 30)  # 2 s during an outage
    live = spool.live_begin(1000, 30 * STEP)
    frames(spool, 1000, 30 * STEP, 45)
    spool.close_timeline()
    span = spool.next_span(max_seconds=60, max_bytes=10**9)
    assert span is not None and (span.start, span.seconds) == (0, 2.0)
    assert span.backfill_id == "1000-0"
    spool.live_end(live)  # the live request broke before any ack: its footage is backfill's
    spool.ack(1000, 0, 30 * STEP)
    span = spool.next_span(max_seconds=60, max_bytes=10**9)
    assert span is not None and (span.start, span.seconds) == (30 * STEP, 3.0)


def test_spans_stop_at_gaps_timelines_and_limits(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 10**9, file_seconds=1.0)
    frames(spool, 1000, 0, 60)
    spool.close_timeline()
    frames(spool, 2000, 0, 30)
    spool.close_timeline()
    span = spool.next_span(max_seconds=2.5, max_bytes=10**9)
    assert span is not None and (span.epoch_ms, span.seconds) == (1000, 2.0)
    span = spool.next_span(max_seconds=60, max_bytes=2500)
    assert span is not None and len(span.files) == 1
    spool.ack(1000, 0, 10**9)
    span = spool.next_span(max_seconds=60, max_bytes=10**9)
    assert span is not None and (span.epoch_ms, span.seconds) == (2000, 2.0)
    with span.open() as reader:
        assert len(b"".join(reader.chunks())) == span.size == 30 * 100


def test_what_was_not_acked_survives_an_edge_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 10**9, file_seconds=1.0)
    frames(spool, 1000, 0, 45)
    spool.close()
    again = Spool(tmp_path, 10**9)
    assert [(f.start, f.end) for f in again.files()] == [(0, 90_000), (90_000, 180_000),
                                                        (180_000, 270_000)]


def test_a_file_cut_short_by_a_crash_is_recovered_at_whole_packets(tmp_path: Path) -> None:
    from tests.edge.test_encoder import SETTINGS
    from edge.capture import SyntheticSource
    from edge.encoder import Encoder

    spool = Spool(tmp_path, 10**9, file_seconds=100.0)
    source = SyntheticSource(SETTINGS.width, SETTINGS.height, SETTINGS.fps)
    encoder = Encoder(SETTINGS, start_monotonic=0.0)
    try:
        for i in range(20):
            spool.append(1000, encoder.encode_chunk(source.render(i), i / 15))
    finally:
        encoder.close()
    [part] = tmp_path.glob("*.part")
    with part.open("ab") as f:
        f.write(b"\x47torn")  # a crash mid-write
    # The process "dies": its descriptors close, nothing is renamed.
    os.close(spool._open.fd)  # noqa: SLF001
    os.close(spool._lock_fd)  # noqa: SLF001
    again = Spool(tmp_path, 10**9)
    [f] = again.files()
    assert (f.start, f.last) == (0, 19 * STEP) and f.size % 188 == 0


def test_a_second_edge_cannot_use_the_same_spool_folder(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 10**9)
    with pytest.raises(SpoolError, match="in use"):
        Spool(tmp_path, 10**9)
    spool.close()
    Spool(tmp_path, 10**9).close()


# -- property: random appends, acks and overflows ----------------------------------------------

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("frame"), st.integers(1, 700), st.booleans()),
        st.tuples(st.just("ack"), st.integers(0, 40), st.integers(0, 40)),
        st.tuples(st.just("timeline"), st.just(0), st.just(False)),
    ),
    max_size=120,
)


class Model:
    """What the test knows: every frame appended, and the acks it sent."""

    def __init__(self) -> None:
        self.appended: list[tuple[int, int]] = []
        self.acks: list[tuple[int, int, int, frozenset]] = []  # with the frames held then
        self.acked: set[tuple[int, int]] = set()
        self.dropped: set[tuple[int, int]] = set()


def held(spool: Spool) -> dict[tuple[int, int], tuple[int, int]]:
    """Map every frame in the spool (epoch, pts) -> its file's (start, last)."""
    out = {}
    files = [(f.epoch_ms, f.start, f.last) for f in spool.files()]
    if (o := spool.open_range()) is not None:
        files.append(o)
    for epoch, start, last in files:
        for pts in range(start, last + 1, STEP):
            out[(epoch, pts)] = (start, last)
    return out


@settings(max_examples=150, deadline=None)
@given(ops=OPS, max_bytes=st.integers(500, 6000))
def test_property_size_bound_acks_and_oldest_first_drops(
    ops: list[tuple[str, int, bool]], max_bytes: int
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        spool = Spool(Path(folder), max_bytes, file_seconds=3 * FPS_SECONDS, fps=15,
                      fsync=False)
        model, epoch, pts = Model(), 1000, 0
        for op, a, b in ops:
            before = held(spool)
            if op == "frame":
                key = b or pts == 0
                spool.append(epoch, Chunk(b"x" * a, pts, key))
                model.appended.append((epoch, pts))
                pts += STEP
            elif op == "ack":
                # The hub acks only what it got: nothing past the last frame appended.
                lo, hi = sorted((min(a * STEP, pts), min(b * STEP, pts)))
                model.acks.append((epoch, lo, hi, frozenset(before)))
                spool.ack(epoch, lo, hi)
            else:
                spool.close_timeline()
                epoch, pts = epoch + 1000, 0
            check(spool, model, before, max_bytes)
        before = held(spool)
        spool.close_timeline()
        check(spool, model, before, max_bytes)
        never_held = set(model.appended) - model.acked - model.dropped - set(held(spool))
        expected = (len(model.dropped) + len(never_held)) * FPS_SECONDS
        assert spool.dropped_total == pytest.approx(expected)
        spool.close()


def check(spool: Spool, model: Model, before: dict, max_bytes: int) -> None:
    """The size bound holds; what left the spool was acked, or the oldest, and counted."""
    assert spool.size <= max_bytes
    now = held(spool)
    for frame in set(before) - set(now):
        start, last = before[frame]
        epoch = frame[0]
        if any(e == epoch and lo <= start and last < hi and frame in known
               for e, lo, hi, known in model.acks):
            model.acked.add(frame)
        else:
            # Not acknowledged: only an overflow may take it, and then nothing older remains.
            assert all(other > frame for other in now), (frame, sorted(now)[:3])
            model.dropped.add(frame)
    counted = (len(model.dropped) + 0) * FPS_SECONDS
    assert spool.dropped_total >= counted - 1e-9


def test_a_failing_disk_drops_the_open_file_and_the_spool_goes_on(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 10**9, file_seconds=1.0)
    frames(spool, 1000, 0, 20)
    os.close(spool._open.fd)  # noqa: SLF001 - the next write fails with EBADF, like EIO
    frames(spool, 1000, 20 * STEP, 25)  # fails at frame 20, goes on at the next keyframe, 35
    spool.close_timeline()
    assert [f.start for f in spool.files()] == [0, 35 * STEP]
    assert spool.dropped_total == pytest.approx((35 - 15) * FPS_SECONDS)
