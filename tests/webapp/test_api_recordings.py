"""GET /api/v1/recordings: search footage from scripts, with clear 400s for bad parameters."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from webapp.extensions import db
from webapp.models import User
from webapp.recordings.params import page_size

from .helpers import Account
from .test_recordings_support import (  # noqa: F401  (fixtures)
    CatalogWriter, at, catalog, viewer_client,
)


@pytest.fixture
def two_cameras(catalog: CatalogWriter) -> list[int]:
    """porch: 3 segments of 10 s; yard: one of 60 s."""
    rows = [catalog.segment("porch", at(index * 10), 10, size=1000 + index,
                            location="Front porch") for index in range(3)]
    rows.append(catalog.segment("yard", at(5), 60, size=5000, location="Back yard"))
    return [row.id for row in rows]


def test_viewers_list_recordings_with_iso_utc_times(viewer_client: FlaskClient,
                                                   two_cameras: list[int]) -> None:
    response = viewer_client.get("/api/v1/recordings?camera=porch&limit=1&sort=time&order=asc")
    assert response.status_code == 200
    assert response.get_json() == [{
        "id": two_cameras[0], "camera": "porch", "location": "Front porch",
        "start": "2026-03-01T10:00:00.000Z", "end": "2026-03-01T10:00:10.000Z",
        "duration": 10.0, "size": 1000, "status": "ok", "backfilled": False,
        "file": f"/api/v1/recordings/{two_cameras[0]}/file",
    }]


def test_backfilled_recordings_say_so(viewer_client: FlaskClient, catalog: CatalogWriter) -> None:
    catalog.segment("porch", at(-3600), 10,
                    backfilled=True)
    (row,) = viewer_client.get("/api/v1/recordings?camera=porch").get_json()
    assert row["backfilled"] is True


def test_a_link_header_points_at_the_next_page(viewer_client: FlaskClient,
                                               two_cameras: list[int]) -> None:
    response = viewer_client.get("/api/v1/recordings?camera=porch&limit=2")
    assert response.headers["Link"] == (
        '</api/v1/recordings?camera=porch&limit=2&offset=2>; rel="next"')
    last = viewer_client.get("/api/v1/recordings?camera=porch&limit=2&offset=2")
    assert len(last.get_json()) == 1 and "Link" not in last.headers


def test_filters_combine(viewer_client: FlaskClient, two_cameras: list[int]) -> None:
    def found(query: str) -> list[int]:
        response = viewer_client.get(f"/api/v1/recordings?{query}")
        assert response.status_code == 200, response.get_json()
        return [item["id"] for item in response.get_json()]

    porch, yard = two_cameras[:3], two_cameras[3]
    assert found("location=yard") == [yard]
    assert found("min_duration=30") == [yard]
    assert found("max_duration=10&order=asc") == porch
    assert found("start=2026-03-01T10:00:25Z&end=2026-03-01T10:01:00Z") == [porch[2], yard]
    # The same range as local time in another zone.
    assert found("start=2026-03-01T11:00:25&end=2026-03-01T11:01:00&tz=Europe/Paris") == [
        porch[2], yard]
    assert found("start=2026-03-01T12:00:25%2B02:00&end=2026-03-01T12:01:00%2B02:00") == [
        porch[2], yard]
    assert found("sort=size&order=desc&limit=2") == [yard, porch[2]]
    assert found("camera=nobody") == []


@pytest.mark.parametrize(("query", "parameter"), [
    ("start=yesterday", "start"),
    ("end=2026-13-01T00:00:00Z", "end"),
    ("start=2026-03-01T11:00:00Z&end=2026-03-01T10:00:00Z", "end"),
    ("min_duration=-1", "min_duration"),
    ("min_duration=nan", "min_duration"),
    ("max_duration=inf", "max_duration"),
    ("min_duration=20&max_duration=10", "max_duration"),
    ("limit=0", "limit"),
    ("limit=ten", "limit"),
    ("offset=-1", "offset"),
    ("offset=100000000", "offset"),
    ("sort=path", "sort"),
    ("sort=start_time", "sort"),
    ("order=sideways", "order"),
    ("status=deleted", "status"),
    ("tz=Mars/Olympus_Mons", "tz"),
    ("from=2026-03-01T10:00:00Z", "from"),
])
def test_bad_parameters_get_400_naming_the_parameter(viewer_client: FlaskClient, query: str,
                                                     parameter: str) -> None:
    response = viewer_client.get(f"/api/v1/recordings?{query}")
    assert response.status_code == 400
    assert response.get_json()["error"].startswith(f"{parameter}: ")


def test_limit_is_capped_not_refused() -> None:
    assert page_size({"limit": "100000"}) == 500
    assert page_size({"limit": "500"}) == 500
    assert page_size({}) == 50


def test_missing_segments_are_listed_only_when_asked(viewer_client: FlaskClient,
                                                     catalog: CatalogWriter) -> None:
    gone = catalog.segment("porch", at(0), status="missing").id
    assert viewer_client.get("/api/v1/recordings").get_json() == []
    listed = viewer_client.get("/api/v1/recordings?status=all").get_json()
    assert [(item["id"], item["status"]) for item in listed] == [(gone, "missing")]


@pytest.mark.parametrize("url", [
    "/api/v1/recordings", "/api/v1/recordings/1/file",
    "/api/v1/playback/porch.m3u8?start=2026-03-01T10:00:00Z",
    "/api/v1/export/porch.mp4?start=2026-03-01T10:00:00Z&end=2026-03-01T10:01:00Z",
])
def test_anonymous_requests_get_401_json(client: FlaskClient, two_cameras: list[int],
                                         url: str) -> None:
    response = client.get(url)
    assert response.status_code == 401
    assert "error" in response.get_json()


def test_a_viewers_bearer_token_works_without_a_session(app: Flask, client: FlaskClient,
                                                        viewer_user: Account,
                                                        two_cameras: list[int]) -> None:
    with app.app_context():
        token = db.session.get(User, viewer_user.id).new_api_token(app.config["CLOCK"]())
        db.session.commit()
    response = client.get("/api/v1/recordings?camera=yard",
                          headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert [item["camera"] for item in response.get_json()] == ["yard"]
