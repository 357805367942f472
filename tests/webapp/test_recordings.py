"""Finding footage: catalog searches, the day timeline, the recordings pages and thumbnails."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from pathlib import Path

import cv2
import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient

from webapp import catalog_queries
from webapp.catalog_queries import QueryError, SearchFilters, Timeline
from webapp.media import thumbnail_path

from .helpers import FakeClock
from .test_recordings_support import (  # noqa: F401  (fixtures)
    T0, CatalogWriter, at, catalog, clips, iso, viewer_client,
)


def search(app: Flask, **kwargs: object) -> catalog_queries.Page:
    """Run catalog_queries.search in an app context; keyword ``filters`` or filter fields."""
    filters = kwargs.pop("filters", None) or SearchFilters(**{
        key: kwargs.pop(key) for key in list(kwargs) if key in SearchFilters.__dataclass_fields__})
    with app.app_context():
        return catalog_queries.search(filters, **kwargs)  # type: ignore[arg-type]


def ids(page: catalog_queries.Page) -> list[int]:
    return [row.id for row in page.rows]


@pytest.fixture
def mixed(catalog: CatalogWriter) -> dict[str, int]:
    """Segments of two cameras with different lengths, sizes and places; one is missing."""
    made = {
        "porch_a": catalog.segment("porch", at(0), 10, size=500, location="Front porch"),
        "porch_b": catalog.segment("porch", at(10), 30, size=300, location="Front porch"),
        "yard_a": catalog.segment("yard", at(5), 20, size=900, location="Back yard"),
        "yard_gone": catalog.segment("yard", at(40), 10, size=100, location="Back yard",
                                     status="missing"),
        "yard_late": catalog.segment("yard", at(3600), 60, size=700, location="Back yard"),
    }
    return {name: info.id for name, info in made.items()}


def test_search_returns_newest_first_and_leaves_missing_files_out(app: Flask,
                                                                  mixed: dict[str, int]) -> None:
    page = search(app)
    assert ids(page) == [mixed["yard_late"], mixed["porch_b"], mixed["yard_a"], mixed["porch_a"]]
    assert not page.has_next
    with_missing = search(app, statuses=("ok", "missing"))
    assert mixed["yard_gone"] in ids(with_missing)


def test_search_filters_by_camera_and_location_substring(app: Flask, mixed: dict[str, int]) -> None:
    assert ids(search(app, camera="porch")) == [mixed["porch_b"], mixed["porch_a"]]
    assert ids(search(app, location="YARD")) == [mixed["yard_late"], mixed["yard_a"]]
    assert ids(search(app, camera="nobody")) == []
    assert ids(search(app, location="%")) == []  # LIKE wildcards are matched literally


def test_search_time_range_matches_segments_that_overlap_it(app: Flask,
                                                            mixed: dict[str, int]) -> None:
    # porch_a is [0, 10): it overlaps [9, 11); porch_b [10, 40) too; yard_a [5, 25) too.
    assert set(ids(search(app, start=at(9), end=at(11)))) == {
        mixed["porch_a"], mixed["porch_b"], mixed["yard_a"]}
    # A segment that ends exactly when the range starts is not in it.
    assert mixed["porch_a"] not in ids(search(app, start=at(10), end=at(11)))
    assert ids(search(app, start=at(3000))) == [mixed["yard_late"]]
    assert ids(search(app, end=at(5))) == [mixed["porch_a"]]


def test_search_filters_by_duration_range(app: Flask, mixed: dict[str, int]) -> None:
    assert set(ids(search(app, min_duration=20, max_duration=30))) == {
        mixed["porch_b"], mixed["yard_a"]}


@pytest.mark.parametrize(("sort", "order", "expected"), [
    ("size", "desc", ["yard_a", "yard_late", "porch_a", "porch_b"]),
    ("size", "asc", ["porch_b", "porch_a", "yard_late", "yard_a"]),
    ("duration", "desc", ["yard_late", "porch_b", "yard_a", "porch_a"]),
    ("time", "asc", ["porch_a", "yard_a", "porch_b", "yard_late"]),
])
def test_search_sorts_by_allowlisted_keys(app: Flask, mixed: dict[str, int], sort: str,
                                          order: str, expected: list[str]) -> None:
    assert ids(search(app, sort=sort, order=order)) == [mixed[name] for name in expected]


@pytest.mark.parametrize("sort", ["path", "id", "start_time", "size_bytes; DROP TABLE x"])
def test_search_refuses_sort_keys_outside_the_allowlist(app: Flask, sort: str) -> None:
    with pytest.raises(QueryError):
        search(app, sort=sort)


def test_search_pages_with_a_has_next_flag_and_no_overlap(app: Flask,
                                                           mixed: dict[str, int]) -> None:
    first = search(app, limit=3)
    second = search(app, limit=3, offset=3)
    assert first.has_next and not second.has_next
    assert len(first.rows) == 3 and len(second.rows) == 1
    assert not set(ids(first)) & set(ids(second))


# --- the day timeline ---------------------------------------------------------------------

def timeline(app: Flask, day: dt.date = T0.date(), tz: dt.tzinfo = dt.timezone.utc,
             now: dt.datetime | None = None) -> Timeline:
    with app.app_context():
        return catalog_queries.day_timeline("porch", day, tz, now=now)


def test_timeline_merges_segments_that_tile_and_shows_the_gaps(app: Flask,
                                                               catalog: CatalogWriter) -> None:
    catalog.segment("porch", at(0), 10)
    catalog.segment("porch", at(11.2), 10)  # 1.2 s later: still one stretch
    catalog.segment("porch", at(60), 10)  # 38.8 s later: a gap
    day = timeline(app)
    assert [(i.start, i.end) for i in day.covered] == [(at(0), at(21.2)), (at(60), at(70))]
    assert [(g.start, g.end) for g in day.gaps] == [
        (day.start, at(0)), (at(21.2), at(60)), (at(70), day.end)]
    assert day.covered_seconds == pytest.approx(31.2)


def test_timeline_clips_to_the_day_in_the_given_time_zone(app: Flask,
                                                          catalog: CatalogWriter) -> None:
    paris = zoneinfo.ZoneInfo("Europe/Paris")  # UTC+1 in March
    midnight = dt.datetime(2026, 3, 1, 23, 0, tzinfo=dt.timezone.utc)  # 00:00 on 2 March, Paris
    catalog.segment("porch", midnight - dt.timedelta(seconds=30), 60)
    day = timeline(app, dt.date(2026, 3, 2), paris)
    assert day.start == midnight
    assert [(i.start, i.end) for i in day.covered] == [
        (midnight, midnight + dt.timedelta(seconds=30))]


def test_timeline_marks_backfilled_stretches_inside_the_footage(app: Flask,
                                                                catalog: CatalogWriter) -> None:
    catalog.segment("porch", at(0), 10)
    catalog.segment("porch", at(10), 10, backfilled=True)  # the edge's spool, after an outage
    catalog.segment("porch", at(20), 10, backfilled=True)
    day = timeline(app)
    assert [(i.start, i.end) for i in day.covered] == [(at(0), at(30))]
    assert [(i.start, i.end) for i in day.backfilled] == [(at(10), at(30))]


def test_timeline_gaps_stop_at_now(app: Flask, catalog: CatalogWriter) -> None:
    catalog.segment("porch", at(0), 10)
    day = timeline(app, now=at(100))
    assert day.gaps[-1].end == at(100)


# --- pages ----------------------------------------------------------------------------------

def test_recordings_page_lists_results_with_thumbnails_and_links(
        viewer_client: FlaskClient, catalog: CatalogWriter) -> None:
    info = catalog.segment("porch", at(0), 10, size=2_500_000, location="Front porch")
    page = viewer_client.get("/recordings/?view=files")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert f'src="/recordings/{info.id}/thumbnail.jpg"' in html
    assert "2026-03-01 10:00:00 UTC" in html and "2026-03-01 10:00:10 UTC" in html
    assert "10.0 s" in html and "2.5 MB" in html and "Front porch" in html
    assert "/recordings/play?camera=porch&amp;start=2026-03-01T10:00:00.000Z" in html
    assert "nvr-stack" in html  # the table that becomes cards on a phone


def test_recordings_page_escapes_camera_names_and_locations(viewer_client: FlaskClient,
                                                            catalog: CatalogWriter) -> None:
    catalog.segment("<script>cam</script>", at(0), location='<img src=x onerror="alert(1)">')
    html = viewer_client.get("/recordings/?view=files").get_data(as_text=True)
    assert "<script>cam" not in html and "<img src=x" not in html
    assert "&lt;script&gt;cam&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in html


def test_recordings_page_filters_with_local_times_and_pages(viewer_client: FlaskClient,
                                                            catalog: CatalogWriter) -> None:
    for index in range(55):
        catalog.segment("porch", at(index * 10), 10)
    catalog.segment("yard", at(0), 10)
    # 11:00 in Paris is 10:00 UTC: the range covers the first 60 s of porch's footage.
    args = "camera=porch&start=2026-03-01T11:00&end=2026-03-01T11:01&tz=Europe/Paris"
    html = viewer_client.get(f"/recordings/?view=files&{args}").get_data(as_text=True)
    assert html.count("data-thumb") == 6
    first = viewer_client.get("/recordings/?view=files&camera=porch").get_data(as_text=True)
    assert first.count("data-thumb") == 50 and "page=2" in first
    second = viewer_client.get("/recordings/?camera=porch&page=2").get_data(as_text=True)
    assert second.count("data-thumb") == 5


@pytest.mark.parametrize(("query", "message"), [
    ("start=yesterday", "start: not an ISO-8601 time"),
    ("sort=path", "sort: must be one of time, duration, size"),
    ("min_duration=-5", "min_duration: must be a number of seconds"),
    ("page=0", "page: must be between"),
    ("tz=Mars/Olympus", "tz: unknown time zone"),
])
def test_recordings_page_answers_bad_filters_with_400_and_the_reason(
        viewer_client: FlaskClient, query: str, message: str) -> None:
    response = viewer_client.get(f"/recordings/?{query}")
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)


def test_timeline_page_draws_footage_and_gaps(viewer_client: FlaskClient, catalog: CatalogWriter,
                                              clock: FakeClock) -> None:
    catalog.segment("porch", at(0), 10)
    catalog.segment("porch", at(60), 10)
    html = viewer_client.get("/recordings/timeline/porch?day=2026-03-01&tz=UTC").get_data(
        as_text=True)
    assert html.count('class="nvr-timeline-covered"') == 2
    assert 'x="36000.0"' in html and 'x="36060.0"' in html  # seconds since midnight
    assert "style=" not in html.split("<svg", 1)[1].split("</svg>", 1)[0]
    assert "50.0 s" in html  # the gap between them
    assert "/recordings/play?camera=porch&amp;start=2026-03-01T10:00:00.000Z" in html


def test_timeline_page_hatches_backfilled_footage_with_a_legend(
        viewer_client: FlaskClient, catalog: CatalogWriter, clock: FakeClock) -> None:
    catalog.segment("porch", at(0), 10)
    html = viewer_client.get("/recordings/timeline/porch?day=2026-03-01&tz=UTC").get_data(
        as_text=True)
    assert "data-backfilled" not in html and "back-filled" not in html  # no legend without it
    catalog.segment("porch", at(10), 10, backfilled=True)
    html = viewer_client.get("/recordings/timeline/porch?day=2026-03-01&tz=UTC").get_data(
        as_text=True)
    assert html.count("data-backfilled>") == 1 and 'x="36010.0"' in html
    assert 'id="nvr-hatch"' in html and "nvr-key-backfilled" in html
    assert "10.0 s back-filled" in html  # on the footage stretch in the list


def test_search_marks_backfilled_recordings(viewer_client: FlaskClient,
                                            catalog: CatalogWriter) -> None:
    catalog.segment("porch", at(0), 10)
    catalog.segment("porch", at(10), 10, backfilled=True)
    html = viewer_client.get("/recordings/?view=files&camera=porch").get_data(as_text=True)
    assert html.count("data-backfilled") == 1


def test_timeline_page_of_an_unknown_camera_is_404(viewer_client: FlaskClient) -> None:
    assert viewer_client.get("/recordings/timeline/nobody").status_code == 404


def test_timeline_picker_redirects_to_the_camera(viewer_client: FlaskClient,
                                                 catalog: CatalogWriter) -> None:
    catalog.camera("porch")
    response = viewer_client.get("/recordings/timeline?camera=porch&day=2026-03-01")
    assert response.status_code == 302
    assert response.headers["Location"] == "/recordings/timeline/porch?day=2026-03-01"


def test_player_page_points_hls_at_the_playlist_and_starts_at_the_asked_time(
        viewer_client: FlaskClient, catalog: CatalogWriter) -> None:
    catalog.segment("porch", at(0), 10)
    html = viewer_client.get(f"/recordings/play?camera=porch&start={iso(at(4))}").get_data(
        as_text=True)
    match = re.search(r'data-src="([^"]+)" data-start-offset="([^"]+)"', html)
    assert match, html
    assert match.group(1) == ("/api/v1/playback/porch.m3u8?start=2026-03-01T10:00:04.000Z"
                              "&amp;end=2026-03-02T10:00:04.000Z")
    assert float(match.group(2)) == pytest.approx(4.0)
    assert "vendor/hls/hls.min." in html and "js/player." in html
    assert 'action="/api/v1/export/porch.mp4"' in html and "Export this range" in html
    assert "Firefox" in html
    assert "<script>" not in html  # everything runs from static files (CSP)


def test_player_page_says_when_there_is_no_footage(viewer_client: FlaskClient,
                                                   catalog: CatalogWriter) -> None:
    catalog.segment("porch", at(0), 10)
    html = viewer_client.get("/recordings/play?camera=porch&start=2026-02-01T00:00:00Z").get_data(
        as_text=True)
    assert "There is no footage of porch" in html and "nvr-video" not in html


def test_no_footage_at_the_asked_moment_offers_the_nearest_footage_each_way(
        viewer_client: FlaskClient, catalog: CatalogWriter) -> None:
    catalog.segment("porch", at(0), 10)
    catalog.segment("porch", at(600), 10)
    # in the gap: the player starts at the next footage and says so, with both neighbours
    html = viewer_client.get(f"/recordings/play?camera=porch&start={iso(at(300))}").get_data(
        as_text=True)
    assert "data-no-footage-at-start" in html and "nvr-video" in html
    assert ('data-nearest="before" href="/recordings/play?camera=porch&amp;'
            'start=2026-03-01T10:00:00.000Z"') in html
    assert 'data-nearest="after"' in html and 'datetime="2026-03-01T10:10:00.000Z"' in html
    # after the last footage, with nothing in the next 24 h: only the footage before is offered
    html = viewer_client.get("/recordings/play?camera=porch&start=2026-03-05T00:00:00Z").get_data(
        as_text=True)
    assert "There is no footage of porch" in html and "The nearest footage:" in html
    assert 'data-nearest="before"' in html and 'data-nearest="after"' not in html
    assert 'datetime="2026-03-01T10:10:10.000Z"' in html  # it ends there
    # footage right at the moment: no notice
    html = viewer_client.get(f"/recordings/play?camera=porch&start={iso(at(2))}").get_data(
        as_text=True)
    assert "data-no-footage-at-start" not in html


def test_player_page_without_a_camera_offers_the_cameras(viewer_client: FlaskClient,
                                                         catalog: CatalogWriter) -> None:
    catalog.camera("porch")
    response = viewer_client.get("/recordings/play")
    assert response.status_code == 200
    assert '<option value="porch">porch</option>' in response.get_data(as_text=True)
    assert viewer_client.get("/recordings/play?camera=nobody").status_code == 404


# --- thumbnails -----------------------------------------------------------------------------

def test_thumbnail_is_a_320_px_jpeg_of_the_first_keyframe_cached_on_disk(
        app: Flask, viewer_client: FlaskClient, catalog: CatalogWriter,
        clips: list[Path]) -> None:
    info = catalog.footage(clips)[0]
    response = viewer_client.get(f"/recordings/{info.id}/thumbnail.jpg")
    assert response.status_code == 200
    assert response.content_type == "image/jpeg"
    data = response.get_data()
    response.close()
    assert data[:3] == b"\xff\xd8\xff"
    picture = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert picture.shape[1] == 320 and picture.shape[0] == 240
    cached = thumbnail_path(app.config["STORAGE_ROOT"], "porch", info.id)
    assert cached == Path(app.config["STORAGE_ROOT"]) / ".thumbs" / "porch" / f"{info.id}.jpg"
    assert cached.read_bytes() == data


def test_thumbnail_of_a_missing_file_or_an_unknown_id_is_404(viewer_client: FlaskClient,
                                                             catalog: CatalogWriter) -> None:
    info = catalog.segment("porch", at(0), path="porch/gone.ts")
    assert viewer_client.get(f"/recordings/{info.id}/thumbnail.jpg").status_code == 404
    assert viewer_client.get("/recordings/999/thumbnail.jpg").status_code == 404


def test_thumbnail_never_reads_outside_the_storage_root(viewer_client: FlaskClient,
                                                        catalog: CatalogWriter) -> None:
    info = catalog.segment("porch", at(0), path="../../etc/passwd")
    assert viewer_client.get(f"/recordings/{info.id}/thumbnail.jpg").status_code == 404


def test_recordings_pages_need_a_login(client: FlaskClient) -> None:
    for url in ("/recordings/", "/recordings/play", "/recordings/timeline/porch",
                "/recordings/1/thumbnail.jpg"):
        response = client.get(url)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/auth/login")


def test_times_render_as_iso_utc() -> None:
    assert catalog_queries.iso_utc(T0 + dt.timedelta(microseconds=1500)) == (
        "2026-03-01T10:00:00.001Z")
