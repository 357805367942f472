"""Bad parameters the audit's odd times did not cover: huge ids, NUL characters, long filters.

Each was a 500 (a driver's OverflowError, PostgreSQL refusing NUL) or a silent 200.
"""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from .test_recordings_support import CatalogWriter, T0, catalog, viewer_client  # noqa: F401

HUGE = "99999999999999999999"  # past 2**63: no database id can be this


@pytest.mark.parametrize("url", [
    f"/api/v1/recordings/{HUGE}/file", f"/api/v1/locks/{HUGE}",
    f"/recordings/{HUGE}/thumbnail.jpg",
])
def test_an_id_no_database_can_hold_is_a_404(viewer_client: FlaskClient,  # noqa: F811
                                             url: str) -> None:
    assert viewer_client.get(url).status_code == 404


@pytest.mark.parametrize("recording", [10**30, -1, True, "12"])
def test_a_lock_of_a_recording_id_out_of_range_is_a_400_naming_it(
        viewer_client: FlaskClient, recording: object) -> None:  # noqa: F811
    response = viewer_client.post("/api/v1/locks", json={"recording": recording})
    assert response.status_code == 400
    assert response.get_json()["error"].startswith("recording:")


@pytest.mark.parametrize("url", ["/api/v1/recordings?camera=por%00ch", "/api/v1/events?tz=%00",
                                 "/recordings/?location=a%00b", "/events/?camera=%00"])
def test_a_nul_character_in_a_parameter_is_a_400_naming_it(viewer_client: FlaskClient,  # noqa: F811
                                                           url: str) -> None:
    response = viewer_client.get(url)
    name = url.split("?")[1].split("=")[0]
    assert response.status_code == 400
    assert f"{name}: must not contain NUL characters" in response.get_data(as_text=True)


@pytest.mark.parametrize(("query", "name"), [("camera=" + "c" * 65, "camera"),
                                             ("location=" + "l" * 129, "location")])
def test_a_filter_longer_than_what_it_filters_is_a_400(viewer_client: FlaskClient,  # noqa: F811
                                                       catalog: CatalogWriter,  # noqa: F811
                                                       query: str, name: str) -> None:
    catalog.segment("porch", T0, 10)
    for url in (f"/api/v1/recordings?{query}", f"/recordings/?{query}"):
        response = viewer_client.get(url)
        assert response.status_code == 400, url
        assert f"{name}: longer than" in response.get_data(as_text=True), url
