"""The audit's odd times (year 1, year 9999, ``tz=+99:99``) are a 400 naming the parameter.

Search, playback, export, events and locks, on the API and on the pages, once each.
"""

from __future__ import annotations

import datetime as dt
import html

import pytest
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st

from webapp.recordings import params

from .test_recordings_support import CatalogWriter, T0, viewer_client  # noqa: F401  (fixtures)
from .test_recordings_support import catalog  # noqa: F401

# (the parameter the answer must name, the query that carries the odd value)
ODD_TIMES = [
    ("start", "start=0001-01-01T00:00:00"),
    ("start", "start=0001-01-01T00:00:00Z"),
    ("start", "start=9999-12-31T23:00:00"),
    ("start", "start=9999-12-31T23:59:59%2B14:00"),
    ("start", "start=0001-01-01T00:00&tz=Europe/Paris"),
    ("end", "start=2026-03-01T10:00:00Z&end=9999-12-31T00:00:00Z"),
    ("tz", "start=2026-03-01T10:00&tz=%2B99:99"),
    ("tz", "start=2026-03-01T10:00&tz=-24:00"),
    ("tz", "start=2026-03-01T10:00&tz=Mars/Olympus"),
]
API_URLS = [
    "/api/v1/recordings?",
    "/api/v1/playback/porch.m3u8?",
    "/api/v1/export/porch.mp4?",
    "/api/v1/events?",
    "/api/v1/locks?",
]
PAGE_URLS = [
    "/recordings/?",
    "/recordings/play?camera=porch&",
    "/events/?",
]


@pytest.fixture
def porch(catalog: CatalogWriter) -> None:  # noqa: F811
    """A camera with one recording, so that every endpoint gets past "no such camera"."""
    catalog.segment("porch", T0, 10)


def _wrong_answers(client: FlaskClient, url: str, api: bool) -> list[str]:
    """Ask ``url`` with every odd time; return what was not a 400 naming the parameter."""
    wrong = []
    for parameter, query in ODD_TIMES:
        response = client.get(url + query)
        text = response.get_data(as_text=True)
        named = (response.get_json()["error"].startswith(f"{parameter}:") if api
                 else f"{parameter}: " in html.unescape(text))
        if response.status_code != 400 or not named:
            wrong.append(f"{query} -> {response.status_code} {text[:200]!r}")
    return wrong


@pytest.mark.parametrize("url", API_URLS)
def test_api_answers_odd_times_with_a_400_naming_the_parameter(
        viewer_client: FlaskClient, porch: None, url: str) -> None:  # noqa: F811
    assert _wrong_answers(viewer_client, url, api=True) == []


@pytest.mark.parametrize("url", PAGE_URLS)
def test_pages_answer_odd_times_with_a_400_naming_the_parameter(
        viewer_client: FlaskClient, porch: None, url: str) -> None:  # noqa: F811
    assert _wrong_answers(viewer_client, url, api=False) == []


def test_the_timeline_page_answers_odd_times_with_a_400(viewer_client: FlaskClient,  # noqa: F811
                                                        porch: None) -> None:
    for query, parameter in [("at=0001-01-01T00:00:00Z", "at"), ("day=9999-12-31", "day"),
                             ("day=2026-03-01&tz=%2B99:99", "tz")]:
        response = viewer_client.get(f"/recordings/timeline/porch?{query}")
        assert response.status_code == 400, query
        assert f"{parameter}: " in html.unescape(response.get_data(as_text=True)), query


def test_the_lock_form_leaves_odd_times_out_of_its_prefill(viewer_client: FlaskClient,  # noqa: F811
                                                           porch: None) -> None:
    # /protect/new?start=... pre-fills the form from a link, dropping a time it cannot read.
    for _, query in ODD_TIMES:
        assert viewer_client.get(f"/protect/new?camera=porch&{query}").status_code == 200, query


@pytest.mark.parametrize(("body", "parameter"), [
    ({"camera": "porch", "start": "0001-01-01T00:00:00Z", "end": "2026-03-01T10:00:00Z"},
     "start"),
    ({"camera": "porch", "start": "2026-03-01T10:00:00Z", "end": "9999-12-31T23:59:59"}, "end"),
    ({"camera": "porch", "start": "2026-03-01T10:00", "end": "2026-03-01T11:00",
      "tz": "+99:99"}, "tz"),
])
def test_a_lock_with_an_odd_time_is_a_400_naming_the_field(
        viewer_client: FlaskClient, porch: None, body: dict[str, str],  # noqa: F811
        parameter: str) -> None:
    response = viewer_client.post("/api/v1/locks", json={**body, "note": "odd"})
    assert response.status_code == 400
    assert response.get_json()["error"].startswith(f"{parameter}:")


@given(value=st.one_of(st.text(max_size=40), st.datetimes().map(dt.datetime.isoformat)),
       tz=st.one_of(st.none(), st.from_regex(r"[+-]\d{2}:\d{2}", fullmatch=True),
                    st.sampled_from(["Europe/Paris", "Pacific/Kiritimati", "Etc/GMT+12"]),
                    st.text(max_size=20)))
@settings(max_examples=300, deadline=None)
def test_any_time_and_zone_parse_or_fail_naming_the_parameter(value: str, tz: str | None) -> None:
    try:
        parsed = params.parse_time(value, "start", params.parse_tz(tz))
    except params.ParamError as exc:
        assert exc.name in ("start", "tz")
        return
    assert params.EARLIEST <= parsed < params.LATEST and parsed.utcoffset() == dt.timedelta(0)
    # what the endpoints then do with it cannot overflow: a day either side, a range after
    assert parsed - dt.timedelta(days=1) < parsed < parsed + params.MAX_RANGE + dt.timedelta(days=1)


def test_an_offset_zone_sent_with_an_unencoded_plus_still_reads(
        viewer_client: FlaskClient, porch: None) -> None:  # noqa: F811
    # tz=+01:00 in a hand-typed URL arrives as " 01:00"; 11:00:05 there is 10:00:05 UTC.
    found = viewer_client.get("/api/v1/recordings?start=2026-03-01T11:00:05&tz=+01:00")
    assert found.status_code == 200 and len(found.get_json()) == 1
