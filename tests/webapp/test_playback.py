"""Playback: HLS playlists built from the catalog, and segment files served by catalog id only."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from urllib.parse import urljoin

import pytest
from flask import Flask
from flask.testing import FlaskClient

from webapp.catalog_queries import SegmentRow
from webapp.media import hls_playlist, span_of

from .test_recordings_support import (  # noqa: F401  (fixtures)
    T0, CatalogWriter, at, catalog, clips, iso, viewer_client,
)

PLAYLIST = "/api/v1/playback/porch.m3u8"


def playlist_lines(client: FlaskClient, start: str, end: str | None = None) -> list[str]:
    """GET a playlist of porch and return its lines (asserting a 200)."""
    url = f"{PLAYLIST}?start={start}" + (f"&end={end}" if end else "")
    response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type == "application/vnd.apple.mpegurl"
    return response.get_data(as_text=True).splitlines()


def entries(lines: list[str]) -> list[dict[str, object]]:
    """Group a media playlist into segments: uri, duration, date, discontinuity before it."""
    result, pending = [], {"discontinuity": False}
    for line in lines:
        if line == "#EXT-X-DISCONTINUITY":
            pending["discontinuity"] = True
        elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            pending["date"] = line.split(":", 1)[1]
        elif line.startswith("#EXTINF:"):
            pending["duration"] = float(line[8:].rstrip(","))
        elif line and not line.startswith("#"):
            result.append({**pending, "uri": line})
            pending = {"discontinuity": False}
    return result


def test_a_playlist_is_an_hls_vod_playlist_of_the_range(viewer_client: FlaskClient,
                                                         catalog: CatalogWriter) -> None:
    catalog.run("porch", "run1")
    rows = [catalog.segment("porch", at(index * 10), 10 - index * 0.4, run_id="run1")
            for index in range(3)]
    lines = playlist_lines(viewer_client, iso(at(0)), iso(at(30)))
    assert lines[0] == "#EXTM3U"
    version = next(line for line in lines if line.startswith("#EXT-X-VERSION:"))
    assert int(version.split(":")[1]) >= 3
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in lines and lines[-1] == "#EXT-X-ENDLIST"
    assert "#EXT-X-TARGETDURATION:10" in lines
    segments = entries(lines)
    assert [s["uri"] for s in segments] == [f"../recordings/{row.id}/segment.ts" for row in rows]
    assert [s["date"] for s in segments] == [
        "2026-03-01T10:00:00.000Z", "2026-03-01T10:00:10.000Z", "2026-03-01T10:00:20.000Z"]
    assert sum(s["duration"] for s in segments) == pytest.approx(10 + 9.6 + 9.2)


def test_a_gap_or_a_new_run_starts_a_discontinuity(viewer_client: FlaskClient,
                                                   catalog: CatalogWriter) -> None:
    catalog.run("porch", "run1")
    catalog.run("porch", "run2")
    catalog.segment("porch", at(0), 10, run_id="run1")
    catalog.segment("porch", at(11.4), 10, run_id="run1")  # 1.4 s later: tiles
    catalog.segment("porch", at(25), 10, run_id="run1")  # 3.6 s gap
    catalog.segment("porch", at(35), 10, run_id="run2")  # tiles, but another ffmpeg run
    catalog.segment("porch", at(45), 10)  # no known run
    segments = entries(playlist_lines(viewer_client, iso(at(0)), iso(at(60))))
    assert [s["discontinuity"] for s in segments] == [False, False, True, True, True]
    assert all("date" in s for s in segments)


def test_target_duration_is_the_longest_segment_rounded_up() -> None:
    rows = [SegmentRow(1, "c", "", T0, at(6.2), 6.2, 1, "ok", "r", "a"),
            SegmentRow(2, "c", "", at(6.2), at(8), 1.8, 1, "ok", "r", "b")]
    text = hls_playlist([span_of(row) for row in rows], lambda segment_id: f"s{segment_id}")
    assert f"#EXT-X-TARGETDURATION:{math.ceil(6.2)}" in text.splitlines()


def test_the_playlist_starts_with_the_segment_that_holds_start(viewer_client: FlaskClient,
                                                               catalog: CatalogWriter) -> None:
    first = catalog.segment("porch", at(0), 10, run_id=catalog.run("porch", "r"))
    catalog.segment("porch", at(10), 10, run_id="r")
    catalog.segment("porch", at(40), 10, run_id="r")
    segments = entries(playlist_lines(viewer_client, iso(at(5)), iso(at(15))))
    assert [s["uri"] for s in segments][0] == f"../recordings/{first.id}/segment.ts"
    assert len(segments) == 2


def test_the_end_defaults_to_24_hours_after_start(viewer_client: FlaskClient,
                                                  catalog: CatalogWriter) -> None:
    catalog.segment("porch", at(0), 10)
    catalog.segment("porch", at(23 * 3600), 10)
    catalog.segment("porch", at(25 * 3600), 10)
    assert len(entries(playlist_lines(viewer_client, iso(at(0))))) == 2


@pytest.mark.parametrize(("query", "status", "message"), [
    ("", 400, "start: required"),
    ("?start=noon", 400, "start: not an ISO-8601 time"),
    ("?start=2026-03-01T10:00:00Z&end=2026-03-01T09:00:00Z", 400, "end: must be after start"),
    ("?start=2026-03-01T10:00:00Z&end=2026-03-02T10:00:01Z", 400, "end: the range is longer"),
    ("?start=2026-03-01T10:00:00Z&camera=yard", 400, "camera: unknown parameter"),
    ("?start=2026-02-01T10:00:00Z", 404, "no footage of porch"),
])
def test_bad_playlist_requests(viewer_client: FlaskClient, catalog: CatalogWriter, query: str,
                               status: int, message: str) -> None:
    catalog.segment("porch", at(0), 10)
    response = viewer_client.get(PLAYLIST + query)
    assert response.status_code == status
    assert response.get_json()["error"].startswith(message)


def test_a_playlist_of_an_unknown_camera_is_404(viewer_client: FlaskClient) -> None:
    response = viewer_client.get("/api/v1/playback/nobody.m3u8?start=2026-03-01T10:00:00Z")
    assert response.status_code == 404
    assert response.get_json() == {"error": "no camera named 'nobody'"}


# --- segment files --------------------------------------------------------------------------

def test_playlist_uris_fetch_the_segment_files(viewer_client: FlaskClient, catalog: CatalogWriter,
                                               clips: list[Path]) -> None:
    catalog.footage(clips)
    url = f"{PLAYLIST}?start={iso(at(0))}"
    for segment, clip in zip(entries(playlist_lines(viewer_client, iso(at(0)))), clips):
        response = viewer_client.get(urljoin(url, str(segment["uri"])), buffered=True)
        assert response.status_code == 200
        assert response.content_type == "video/mp2t"
        assert response.get_data() == clip.read_bytes()


def test_segment_files_answer_range_requests(viewer_client: FlaskClient, catalog: CatalogWriter,
                                             clips: list[Path]) -> None:
    info = catalog.footage(clips)[1]
    size = clips[1].stat().st_size
    response = viewer_client.get(f"/api/v1/recordings/{info.id}/file",
                                 headers={"Range": "bytes=100-299"}, buffered=True)
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes 100-299/{size}"
    assert response.get_data() == clips[1].read_bytes()[100:300]
    assert response.headers["Accept-Ranges"] == "bytes"


def test_unknown_ids_and_vanished_files_are_404(viewer_client: FlaskClient,
                                                catalog: CatalogWriter) -> None:
    gone = catalog.segment("porch", at(0), path="porch/2026-03-01/gone.ts")
    for segment_id in (gone.id, 12345):
        response = viewer_client.get(f"/api/v1/recordings/{segment_id}/file")
        assert response.status_code == 404
        assert "error" in response.get_json()


@pytest.mark.parametrize("path", ["../../etc/passwd", "/etc/passwd", "porch/../../../etc/hosts"])
def test_a_catalog_path_outside_the_storage_root_is_never_served(
        viewer_client: FlaskClient, catalog: CatalogWriter, path: str) -> None:
    info = catalog.segment("porch", at(0), path=path)
    response = viewer_client.get(f"/api/v1/recordings/{info.id}/file")
    assert response.status_code == 404
    assert b"root:" not in response.get_data()


def test_a_symlink_out_of_the_storage_root_is_never_served(app: Flask, viewer_client: FlaskClient,
                                                           catalog: CatalogWriter) -> None:
    link = Path(app.config["STORAGE_ROOT"]) / "porch" / "sneaky.ts"
    link.parent.mkdir(parents=True)
    os.symlink("/etc/passwd", link)
    info = catalog.segment("porch", at(0), path="porch/sneaky.ts")
    assert viewer_client.get(f"/api/v1/recordings/{info.id}/file").status_code == 404


def test_there_is_no_route_from_a_request_path_to_the_disk(app: Flask) -> None:
    media_rules = [rule.rule for rule in app.url_map.iter_rules()
                   if "recordings" in rule.rule or "playback" in rule.rule
                   or "export" in rule.rule]
    assert media_rules and not any(re.search(r"<path:", rule) for rule in media_rules)
