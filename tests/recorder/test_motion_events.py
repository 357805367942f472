"""Parsing motion reports on the ingest port: routes, limits and a 4xx naming each bad field."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.errors import IngestRejected
from recorder.ingest.events import (
    EVENTS, FACES, GALLERY, MAX_BODY_BYTES, SETTINGS, check_body_head, check_method, ingest_route,
    parse_report, settings_json,
)

NOW = 1_780_000_000.0
JPEG = b"\xff\xd8\xff\xe0" + bytes(32)


def body(**fields: object) -> bytes:
    return json.dumps({"event_key": "ab12-1", "start": NOW - 10, "end": NOW - 4, "score": 0.2,
                       "box": [0.1, 0.2, 0.3, 0.4], **fields}).encode()


def test_a_good_report_is_parsed_with_its_snapshot() -> None:
    report = parse_report("yard", body(snapshot=base64.b64encode(JPEG).decode()), now=NOW)
    assert (report.camera, report.event_key, report.score) == ("yard", "ab12-1", 0.2)
    assert report.end is not None and (report.end - report.start).total_seconds() == 6
    assert report.box == (0.1, 0.2, 0.3, 0.4) and report.snapshot == JPEG


def test_a_start_report_has_no_end() -> None:
    assert parse_report("yard", body(end=None), now=NOW).end is None


@pytest.mark.parametrize("raw, status, words", [
    (b"{garbage", 400, "not valid JSON"),
    (b"[1, 2]", 400, "JSON object"),
    (body(event_key="../../etc"), 400, "event_key"),
    (body(event_key="x" * 65), 400, "event_key"),
    (body(start="yesterday"), 400, "start must be a number"),
    (body(start=NOW + 2 * 86400), 400, "start is not a plausible time"),
    (body(end=NOW - 20), 400, "end must be at or after start"),
    (body(score=1.5), 400, "score"),
    (body(box=[0.5, 0.5, 0.6, 0.1]), 400, "box must lie within the frame"),
    (body(box=[0.1, 0.1, 0.1]), 400, "box must be"),
    (body(box=[0.1, 0.1, float("nan"), 0.1]), 400, "box must be a number"),
    (body(snapshot="%%%"), 400, "base64"),
    (body(snapshot=base64.b64encode(b"GIF89a").decode()), 400, "JPEG"),
    (body(snapshot=base64.b64encode(JPEG + bytes(200_000)).decode()), 413, "snapshot is larger"),
])
def test_bad_reports_get_a_4xx_naming_the_field(raw: bytes, status: int, words: str) -> None:
    with pytest.raises(IngestRejected) as caught:
        parse_report("yard", raw, now=NOW)
    assert caught.value.status == status and words in caught.value.reason


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.sampled_from(["event_key", "start", "end", "score",
                                                       "box", "snapshot", "x"]), inner,
                                      max_size=6), max_leaves=12))
def test_any_json_is_parsed_or_refused_with_a_4xx(data: object) -> None:
    try:
        raw = json.dumps(data).encode()
    except ValueError:
        return
    try:
        parse_report("yard", raw, now=NOW)
    except IngestRejected as exc:
        assert 400 <= exc.status < 500


@pytest.mark.parametrize("target, expected", [
    (b"/ingest/v1/yard/events", ("yard", EVENTS)),
    (b"/ingest/v1/yard/motion-settings?token=x", ("yard", SETTINGS)),
    (b"/ingest/v1/yard/faces", ("yard", FACES)),
    (b"/ingest/v1/yard/faces-gallery", ("yard", GALLERY)),
    (b"/ingest/v1/yard", None),
    (b"/ingest/v1/yard/other", None),
    (b"/ingest/yard/events", None),
])
def test_ingest_routes_are_told_from_the_stream(target: bytes, expected: object) -> None:
    assert ingest_route(target) == expected


def test_a_bad_camera_name_or_method_or_body_head_is_refused_before_the_body() -> None:
    with pytest.raises(IngestRejected, match="bad camera name") as caught:
        ingest_route(b"/ingest/v1/..%2Fetc/events")
    assert caught.value.status == 400
    with pytest.raises(IngestRejected) as caught:
        check_method(EVENTS, b"GET")
    assert caught.value.status == 405
    with pytest.raises(IngestRejected) as caught:
        check_body_head({b"content-type": b"application/json",
                         b"content-length": str(MAX_BODY_BYTES + 1).encode()})
    assert caught.value.status == 413
    with pytest.raises(IngestRejected) as caught:
        check_body_head({b"content-type": b"video/mp2t"})
    assert caught.value.status == 415


def test_settings_carry_the_mask_as_json_and_survive_a_broken_one() -> None:
    assert settings_json(True, 40, "[[[0, 0], [1, 0], [1, 1]]]", None) == {
        "enabled": True, "sensitivity": 40, "mask": [[[0, 0], [1, 0], [1, 1]]], "updated_at": None}
    assert settings_json(False, 50, "{broken", None)["mask"] == []
