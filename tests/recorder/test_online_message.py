"""The `online` alert says whether the outage's footage will be back-filled or is lost."""

from __future__ import annotations

import datetime as dt

import pytest

from recorder.health.messages import compose

AT = dt.datetime(2026, 3, 1, 12, tzinfo=dt.timezone.utc)
BASE = {"offline_since": "2026-03-01T11:58:00+00:00", "outage_seconds": 120.0,
        "reason": "connection_lost", "peer": "192.0.2.7:50000"}


def body(details: dict) -> str:
    message = compose("online", "porch", AT, {**BASE, **details}, "[NVR]")
    return message.body


@pytest.mark.parametrize("details,expected", [
    ({"gap": "backfill"}, "Footage of the gap: will be recovered"),
    ({"gap": "lost"}, "Footage of the gap: lost"),
    ({}, "Footage of the gap: lost"),  # a stock pusher or an RTSP camera: no spool
])
def test_online_alert_says_whether_the_gap_is_recovered(details, expected):
    assert expected in body(details)


def test_online_alert_names_what_the_full_spool_dropped():
    text = body({"gap": "backfill", "dropped_seconds": 90})
    assert "will be recovered" in text and "1 min 30 s of it was lost" in text
