"""Ingest protocol v2: the request-head fields and the ndjson ack lines (protocol.md, Version 2)."""

from __future__ import annotations

import asyncio
import math
import time

import h11
import pytest
from hypothesis import given
from hypothesis import strategies as st

from recorder.errors import IngestRejected
from recorder.ingest.protocol import (
    PTS_HZ, TICK, DurableProgress, decode_line, encode_ack, encode_closed, encode_done,
    encode_live, parse_fields, snap_to_tick,
)
from recorder.ingest.server import parse_request_head
from tests.support import aio

EPOCH = time.time() - 3600
ticks = st.integers(min_value=0, max_value=(1 << 33) * 4)  # well past a PTS wrap
backfill_ids = st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True)
seconds = st.floats(min_value=0, max_value=10 * 365 * 86400.0, allow_nan=False)


def head(**headers: str) -> h11.Request:
    pairs = [("Host", "hub")] + [(k.replace("_", "-"), v) for k, v in headers.items()]
    return h11.Request(method="POST", target="/ingest/v1/porch", headers=pairs)


@given(ticks)
def test_an_ack_decodes_to_the_exact_tick_it_encodes(tick):
    pts = tick / PTS_HZ
    assert decode_line(encode_ack(pts)).durable_pts == pts
    assert round(decode_line(encode_ack(pts)).durable_pts * PTS_HZ) == tick


@given(ticks, st.floats(min_value=-4.9e-6, max_value=4.9e-6))
def test_a_listed_time_printed_to_6_decimals_snaps_back_to_its_tick(tick, error):
    # ffmpeg prints times with 6 decimals; a tick is 11.1 µs, so rounding recovers it
    assert snap_to_tick(tick / PTS_HZ + error) == tick / PTS_HZ


@given(st.integers(0, 10**6), st.integers(0, 2**53), st.one_of(st.none(), ticks))
def test_done_lines_round_trip(segments, size, tick):
    pts = None if tick is None else tick / PTS_HZ
    ack = decode_line(encode_done(segments, size, pts))
    assert (ack.done, ack.segments, ack.size, ack.durable_pts) == (True, segments, size, pts)


@given(st.text(min_size=1, max_size=80))
def test_closed_lines_round_trip_any_reason(reason):
    line = encode_closed(reason)
    assert line.endswith(b"\n") and line.count(b"\n") == 1  # one JSON object per line
    assert decode_line(line).closed == reason


@given(st.booleans())
def test_live_hints_round_trip_and_are_not_acks(watched):
    ack = decode_line(encode_live(watched))
    assert ack.live is watched
    assert (ack.durable_pts, ack.done, ack.closed) == (None, False, None)


@given(st.lists(ticks, max_size=30))
def test_durable_progress_never_goes_back(values):
    progress = DurableProgress()
    seen = []
    for tick in values:
        progress.advance(tick / PTS_HZ)
        seen.append(progress.durable_pts)
    assert seen == sorted(seen, key=lambda v: -1 if v is None else v)
    if values:
        assert progress.durable_pts == max(values) / PTS_HZ


def test_a_frozen_progress_stops_advancing_and_says_why():
    progress = DurableProgress()
    progress.advance(2.0)
    progress.freeze("recorder restarted")
    progress.advance(4.0)
    assert (progress.durable_pts, progress.frozen) == (2.0, "recorder restarted")


def test_changed_wakes_the_ack_writer_with_the_latest_value():
    async def scenario() -> float | None:
        progress = DurableProgress()
        waiter = asyncio.create_task(progress.changed())
        progress.advance(1.0)
        progress.advance(3.0 + TICK)  # two segments before the writer runs: one ack line
        return await waiter

    assert aio.run(scenario()) == snap_to_tick(3.0 + TICK)


@given(backfill_ids, st.sampled_from(["0", "1"]))
def test_valid_backfill_heads_parse(backfill_id, spool):
    request = parse_request_head(head(X_NVR_Protocol="2", X_NVR_Mode="backfill",
                                      X_NVR_Backfill_Id=backfill_id, X_NVR_Spool=spool,
                                      X_NVR_Stream_Epoch=f"{EPOCH:.3f}"), "peer")
    fields = request.protocol
    assert (fields.version, fields.backfill, fields.acks) == (2, True, True)
    assert fields.backfill_id == backfill_id and fields.spool == (spool == "1")


@given(seconds)
def test_spool_dropped_seconds_parse_exactly(dropped):
    fields = parse_fields({"x-nvr-protocol": "2", "x-nvr-spool-dropped": repr(dropped)}, EPOCH)
    assert fields.spool_dropped == dropped and not fields.backfill


def test_a_head_without_v2_fields_is_version_1_live():
    fields = parse_request_head(head(), "peer").protocol
    assert (fields.version, fields.mode, fields.acks, fields.spool) == (1, "live", False, False)


@pytest.mark.parametrize("headers,needle", [
    ({"x-nvr-protocol": "4"}, "X-NVR-Protocol"),
    ({"x-nvr-protocol": "two"}, "X-NVR-Protocol"),
    ({"x-nvr-mode": "backfill", "x-nvr-protocol": "3", "x-nvr-backfill-id": "b1"},
     "back-fill with 2"),
    ({"x-nvr-mode": "replay", "x-nvr-protocol": "2"}, "X-NVR-Mode"),
    ({"x-nvr-mode": "backfill"}, "X-NVR-Protocol: 2"),
    ({"x-nvr-mode": "backfill", "x-nvr-protocol": "2"}, "X-NVR-Backfill-Id"),
    ({"x-nvr-mode": "backfill", "x-nvr-protocol": "2", "x-nvr-backfill-id": "a/b"},
     "X-NVR-Backfill-Id"),
    ({"x-nvr-mode": "backfill", "x-nvr-protocol": "2", "x-nvr-backfill-id": "x" * 65},
     "X-NVR-Backfill-Id"),
    ({"x-nvr-protocol": "2", "x-nvr-backfill-id": "b1"}, "only for X-NVR-Mode: backfill"),
    ({"x-nvr-protocol": "2", "x-nvr-spool-dropped": "-1"}, "X-NVR-Spool-Dropped"),
    ({"x-nvr-protocol": "2", "x-nvr-spool-dropped": "nan"}, "X-NVR-Spool-Dropped"),
    ({"x-nvr-protocol": "2", "x-nvr-spool-dropped": "lots"}, "X-NVR-Spool-Dropped"),
    ({"x-nvr-mode": "backfill", "x-nvr-protocol": "2", "x-nvr-backfill-id": "b1",
      "x-nvr-spool-dropped": "3"}, "only for live"),
    ({"x-nvr-protocol": "2", "x-nvr-spool": "yes"}, "X-NVR-Spool"),
])
def test_bad_v2_heads_get_a_400_naming_the_header(headers, needle):
    with pytest.raises(IngestRejected) as caught:
        parse_fields(headers, EPOCH)
    assert caught.value.status == 400 and needle in caught.value.reason


@pytest.mark.parametrize("version", ["2", "3"])
def test_v2_and_v3_need_a_stream_epoch_because_acks_are_in_pts(version):
    with pytest.raises(IngestRejected) as caught:
        parse_fields({"x-nvr-protocol": version}, None)
    assert caught.value.status == 400 and "X-NVR-Stream-Epoch" in caught.value.reason


def test_a_v3_head_is_a_direct_live_request_with_acks():
    fields = parse_fields({"x-nvr-protocol": "3", "x-nvr-spool": "1"}, EPOCH)
    assert (fields.version, fields.direct, fields.acks, fields.backfill, fields.spool) == (
        3, True, True, False, True)
    assert not parse_fields({"x-nvr-protocol": "2"}, EPOCH).direct


@given(st.binary(max_size=40) | st.text(max_size=40).map(str.encode))
def test_decoding_garbage_raises_value_error_only(raw):
    try:
        ack = decode_line(raw)
    except ValueError:
        return  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors too
    assert ack.closed is not None or ack.done or (
        ack.durable_pts is not None and math.isfinite(ack.durable_pts))
