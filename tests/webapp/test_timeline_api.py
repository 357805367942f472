"""GET /api/v1/timeline: footage spans merged from segments, the segment being written as
footage, gaps with their reasons, back-filled spans, motion density and markers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from nvrlib.catalog.models import CameraStatus, MotionEvent, Outage
from tests.support.postgres import postgres_cluster, postgres_unavailable_reason
from tests.support.requirements import require
from webapp.extensions import db

from webapp.catalog_queries import iso_utc as iso

from .helpers import Account, AuthActions
from .test_recordings_support import (  # noqa: F401  (fixtures)
    CatalogWriter, at, catalog, viewer_client,
)

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc)  # the fake clock's time


def timeline(client: FlaskClient, start: dt.datetime, end: dt.datetime, **args: str):
    """GET the timeline and return the JSON of its cameras, by name."""
    query = "&".join(f"{key}={value}" for key, value in
                     {"start": iso(start), "end": iso(end), **args}.items())
    response = client.get(f"/api/v1/timeline?{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return {row["camera"]: row for row in response.get_json()["cameras"]}


def add(app: Flask, *rows: object) -> None:
    with app.app_context():
        db.session.add_all(rows)
        db.session.commit()


def spans(items: list[dict]) -> list[tuple[str, str]]:
    return [(item["start"], item["end"]) for item in items]


def test_tiling_segments_merge_into_spans_and_gaps_carry_the_outage_reason(
        app: Flask, viewer_client: FlaskClient, catalog: CatalogWriter) -> None:
    first = [catalog.segment("porch", at(2 * i)) for i in range(3)]  # 0-6 s, tiling
    later = catalog.segment("porch", at(20), 4.0)  # 20-24 s
    camera_id = catalog.camera("porch")
    add(app, Outage(camera_id=camera_id, started_at=at(7), ended_at=at(19),
                    reason="connection_lost"))
    row = timeline(viewer_client, at(0), at(30))["porch"]
    assert spans(row["footage"]) == [(iso(at(0)), iso(at(6))), (iso(at(20)), iso(at(24)))]
    assert [s["first_segment"] for s in row["footage"]] == [first[0].id, later.id]
    assert [s["live"] for s in row["footage"]] == [False, False]
    gaps = row["gaps"]
    assert spans(gaps) == [(iso(at(6)), iso(at(20))), (iso(at(24)), iso(at(30)))]
    assert gaps[0]["reasons"] == ["connection_lost"]
    assert gaps[0]["reason_text"] == "connection lost"
    assert gaps[1]["reasons"] == []


def test_spans_are_clipped_to_the_range_and_a_small_jitter_still_tiles(
        viewer_client: FlaskClient, catalog: CatalogWriter) -> None:
    catalog.segment("porch", at(0), 10.0)
    catalog.segment("porch", at(10.5), 10.0)  # 0.5 s late: within the tile tolerance
    row = timeline(viewer_client, at(5), at(15))["porch"]
    assert spans(row["footage"]) == [(iso(at(5)), iso(at(15)))]
    assert row["gaps"] == []


def test_the_segment_being_written_counts_as_footage_while_the_camera_is_live(
        app: Flask, viewer_client: FlaskClient, catalog: CatalogWriter) -> None:
    start = NOW - dt.timedelta(seconds=60)
    catalog.segment("porch", start, 50.0)  # ends 10 s ago; the next one is being written
    catalog.segment("yard", start, 50.0)  # offline: its last 10 s are a gap
    add(app, CameraStatus(camera_id=catalog.camera("porch"), state="recording", online=True,
                          last_segment_end=NOW - dt.timedelta(seconds=10), updated_at=NOW),
        CameraStatus(camera_id=catalog.camera("yard"), state="stopped", online=False,
                     last_segment_end=NOW - dt.timedelta(seconds=10), updated_at=NOW))
    rows = timeline(viewer_client, start, NOW + dt.timedelta(minutes=5))
    porch, yard = rows["porch"], rows["yard"]
    assert porch["live"] is True
    assert spans(porch["footage"]) == [(iso(start), iso(NOW))]
    assert porch["footage"][0]["live"] is True
    assert porch["gaps"] == []  # and the future is no gap
    assert yard["live"] is False
    assert spans(yard["gaps"]) == [(iso(NOW - dt.timedelta(seconds=10)), iso(NOW))]


def test_a_stale_live_status_does_not_count_as_footage(
        app: Flask, viewer_client: FlaskClient, catalog: CatalogWriter) -> None:
    start = NOW - dt.timedelta(seconds=60)
    catalog.segment("porch", start, 50.0)
    add(app, CameraStatus(camera_id=catalog.camera("porch"), state="recording", online=True,
                          last_segment_end=NOW - dt.timedelta(seconds=10),
                          updated_at=NOW - dt.timedelta(minutes=5)))  # the hub stopped writing
    porch = timeline(viewer_client, start, NOW)["porch"]
    assert porch["live"] is False
    assert spans(porch["footage"]) == [(iso(start), iso(NOW - dt.timedelta(seconds=10)))]


def test_backfilled_segments_are_their_own_spans_inside_the_footage(
        viewer_client: FlaskClient, catalog: CatalogWriter) -> None:
    catalog.segment("porch", at(0), 10.0)
    catalog.segment("porch", at(10), 10.0, backfilled=True)
    catalog.segment("porch", at(20), 10.0, backfilled=True)
    catalog.segment("porch", at(30), 10.0)
    row = timeline(viewer_client, at(0), at(40))["porch"]
    assert spans(row["footage"]) == [(iso(at(0)), iso(at(40)))]
    assert spans(row["backfilled"]) == [(iso(at(10)), iso(at(30)))]


def test_motion_density_counts_the_events_overlapping_each_bucket(
        app: Flask, viewer_client: FlaskClient, catalog: CatalogWriter) -> None:
    camera_id = catalog.camera("porch")
    add(app,
        MotionEvent(camera_id=camera_id, event_key="e1", start_time=at(10), end_time=at(70),
                    score=0.2),
        MotionEvent(camera_id=camera_id, event_key="e2", start_time=at(65), end_time=at(66),
                    score=0.5, snapshot_path="porch/motion/e2.jpg"),
        MotionEvent(camera_id=camera_id, event_key="e3", start_time=at(200), end_time=None,
                    score=0.1))
    row = timeline(viewer_client, at(0), at(240), resolution="60")["porch"]
    assert row["motion"]["counts"] == [1, 2, 0, 1]
    events = row["motion"]["events"]
    assert [e["start"] for e in events] == [iso(at(10)), iso(at(65)), iso(at(200))]
    assert [e["has_snapshot"] for e in events] == [False, True, False]
    assert events[2]["end"] is None


def test_a_motion_event_whose_end_was_lost_is_a_mark_not_motion_until_now(
        app: Flask, viewer_client: FlaskClient, catalog: CatalogWriter) -> None:
    start = NOW - dt.timedelta(hours=8)  # open for longer than any event lasts: its edge died
    add(app, MotionEvent(camera_id=catalog.camera("porch"), event_key="lost", start_time=start,
                         end_time=None, score=0.2))
    row = timeline(viewer_client, start, NOW, resolution="3600")["porch"]
    assert [(e["start"], e["end"], e["end_lost"]) for e in row["motion"]["events"]] == [
        (iso(start), iso(start), True)]
    assert row["motion"]["counts"] == [1, 0, 0, 0, 0, 0, 0, 0]


def test_only_the_cameras_asked_for_in_their_order(
        viewer_client: FlaskClient, catalog: CatalogWriter) -> None:
    for name in ("a-cam", "b-cam", "c-cam"):
        catalog.segment(name, at(0))
    response = viewer_client.get(f"/api/v1/timeline?start={iso(at(0))}&cameras=c-cam,a-cam")
    assert [row["camera"] for row in response.get_json()["cameras"]] == ["c-cam", "a-cam"]


@pytest.mark.parametrize(("query", "named"), [
    ("", "start"),
    ("start=2026-03-01T10:00:00Z&end=2026-03-01T09:00:00Z", "end"),
    ("start=2026-03-01T10:00:00Z&resolution=0.5", "resolution"),
    ("start=2026-03-01T10:00:00Z&resolution=1", "resolution"),  # 86,400 buckets
    ("start=2026-03-01T10:00:00Z&from=x", "from"),
])
def test_bad_parameters_are_a_400_naming_them(viewer_client: FlaskClient, query: str,
                                              named: str) -> None:
    response = viewer_client.get(f"/api/v1/timeline?{query}")
    assert response.status_code == 400
    assert response.get_json()["error"].startswith(f"{named}:")


def test_an_unknown_camera_is_a_404(viewer_client: FlaskClient,
                                    catalog: CatalogWriter) -> None:
    catalog.segment("porch", at(0))
    response = viewer_client.get(f"/api/v1/timeline?start={iso(at(0))}&cameras=porch,nope")
    assert response.status_code == 404
    assert "nope" in response.get_json()["error"]


def test_a_run_is_footage_from_its_first_to_its_last_segment_less_the_missing_ones(
        app: Flask, viewer_client: FlaskClient, catalog: CatalogWriter) -> None:
    run = catalog.run("porch", "run-a")
    for index in range(5):
        catalog.segment("porch", at(10 * index), 10.0, run_id=run,
                        status="missing" if index == 2 else "ok")
    catalog.run("porch", "run-b", at(60))
    catalog.segment("porch", at(50.4), 10.0, run_id="run-b")  # the next run tiles on
    row = timeline(viewer_client, at(5), at(100))["porch"]
    assert spans(row["footage"]) == [(iso(at(5)), iso(at(20))), (iso(at(30)), iso(at(60.4)))]
    assert spans(row["gaps"]) == [(iso(at(20)), iso(at(30))), (iso(at(60.4)), iso(at(100)))]


def test_a_backfill_run_is_read_segment_by_segment(
        app: Flask, viewer_client: FlaskClient, catalog: CatalogWriter) -> None:
    catalog.run("porch", "live-1")
    catalog.segment("porch", at(0), 10.0, run_id="live-1")
    catalog.run("porch", "spool-1")
    with app.app_context():
        from nvrlib.catalog.models import Run
        db.session.get(Run, "spool-1").kind = "backfill"
        db.session.commit()
    # the edge's spool skipped 30-40 s (live footage had it): the gap stays a gap
    for start in (10, 20, 40):
        catalog.segment("porch", at(start), 10.0, run_id="spool-1", backfilled=True)
    row = timeline(viewer_client, at(0), at(50))["porch"]
    assert spans(row["footage"]) == [(iso(at(0)), iso(at(30))), (iso(at(40)), iso(at(50)))]
    assert spans(row["backfilled"]) == [(iso(at(10)), iso(at(30))), (iso(at(40)), iso(at(50)))]


@pytest.fixture(scope="module")
def pg_catalog() -> Iterator[str]:
    """A throwaway PostgreSQL catalog (skipped where the server binaries are missing)."""
    require(postgres_unavailable_reason())
    with postgres_cluster("nvr_timeline") as url:
        yield url


def test_the_timeline_works_on_postgresql(make_app: Callable[..., Flask], tmp_path: Path,
                                          pg_catalog: str, viewer_user: Account) -> None:
    app = make_app(SQLALCHEMY_DATABASE_URI=pg_catalog,
                   USERS_DB_URL=f"sqlite:///{tmp_path / 'users.db'}")
    writer = CatalogWriter(app)
    writer.run("porch", "pg-run")
    for index in range(3):
        writer.segment("porch", at(10 * index), 10.0, run_id="pg-run",
                       status="missing" if index == 1 else "ok")
    add(app, MotionEvent(camera_id=writer.camera("porch"), event_key="pg-1",
                         start_time=at(65), end_time=at(70.5), score=0.4))
    client = app.test_client()
    AuthActions(client).login(viewer_user)
    row = timeline(client, at(0), at(120), resolution="60")["porch"]
    assert spans(row["footage"]) == [(iso(at(0)), iso(at(10))), (iso(at(20)), iso(at(30)))]
    assert row["motion"]["counts"] == [0, 1]
    assert [(e["start"], e["end"]) for e in row["motion"]["events"]] == [
        (iso(at(65)), iso(at(70.5)))]


def test_no_gap_before_the_camera_existed(app: Flask, viewer_client: FlaskClient,
                                          catalog: CatalogWriter) -> None:
    catalog.segment("porch", at(100), 10.0)  # the camera was first seen at T0 (at(0))
    row = timeline(viewer_client, at(-300), at(120))["porch"]
    assert spans(row["gaps"]) == [(iso(at(0)), iso(at(100))), (iso(at(110)), iso(at(120)))]
