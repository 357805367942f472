"""Exports of several cameras as a ZIP of MP4s (stream-copied), and a keyframes-only timelapse."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import av
import pytest
from flask import Flask
from flask.testing import FlaskClient

from webapp.catalog_queries import iso_utc as iso

from .test_export import leftovers, mp4_facts
from .test_recordings_support import (  # noqa: F401  (fixtures)
    CatalogWriter, at, catalog, clips, viewer_client,
)


@pytest.mark.both_ffmpegs
def test_a_zip_holds_one_stream_copied_mp4_per_camera_with_footage(
        app: Flask, viewer_client: FlaskClient, catalog: CatalogWriter, clips: list[Path],
        tmp_path: Path) -> None:
    catalog.footage(clips, camera="porch")
    catalog.footage(clips, camera="yard", run_id="run00002", location="Back yard")
    catalog.camera("attic")  # no footage: left out of the ZIP
    response = viewer_client.get(f"/api/v1/export.zip?cameras=porch,yard,attic"
                                 f"&start={iso(at(2))}&end={iso(at(6))}", buffered=True)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type == "application/zip"
    assert response.headers["Content-Disposition"].endswith('.zip"')
    with zipfile.ZipFile(io.BytesIO(response.get_data())) as archive:
        names = archive.namelist()
        assert names == ["porch_Front-porch_20260301T100002Z_20260301T100006Z.mp4",
                         "yard_Back-yard_20260301T100002Z_20260301T100006Z.mp4"]
        for name in names:
            duration, frames, codec = mp4_facts(archive.read(name), tmp_path)
            assert duration == pytest.approx(4.0, abs=0.2)
            assert frames == 40 and codec == "h264"  # every frame, copied
    assert leftovers(app) == []  # the temp folder went with the last byte


def test_a_zip_of_no_footage_is_a_404_and_bad_parameters_a_400(
        viewer_client: FlaskClient, catalog: CatalogWriter) -> None:
    catalog.camera("attic")
    window = f"&start={iso(at(0))}&end={iso(at(6))}"
    assert viewer_client.get(f"/api/v1/export.zip?cameras=attic{window}").status_code == 404
    assert viewer_client.get(f"/api/v1/export.zip?cameras=nope{window}").status_code == 404
    missing = viewer_client.get(f"/api/v1/export.zip?start={iso(at(0))}&end={iso(at(6))}")
    assert missing.status_code == 400 and missing.get_json()["error"].startswith("cameras:")
    no_end = viewer_client.get(f"/api/v1/export.zip?cameras=attic&start={iso(at(0))}")
    assert no_end.status_code == 400 and no_end.get_json()["error"].startswith("end:")


@pytest.mark.both_ffmpegs
def test_a_timelapse_plays_the_range_speed_times_faster_from_keyframes(
        app: Flask, viewer_client: FlaskClient, catalog: CatalogWriter, clips: list[Path],
        tmp_path: Path) -> None:
    catalog.footage(clips, camera="porch")
    response = viewer_client.get(f"/api/v1/timelapse/porch.mp4?start={iso(at(0))}"
                                 f"&end={iso(at(6))}&speed=2", buffered=True)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Disposition"].endswith('_timelapse-x2.mp4')
    path = tmp_path / "lapse.mp4"
    path.write_bytes(response.get_data())
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame for frame in container.decode(stream)]
        duration = container.duration / 1e6
    # 6 s at 2x: 3 s of video; the six keyframes (one a second) held at 30 fps between them
    assert duration == pytest.approx(3.0, abs=0.6)
    assert stream.average_rate == 30
    assert len(frames) == pytest.approx(90, abs=20)
    assert leftovers(app) == []


def test_a_timelapse_speed_out_of_range_is_a_400(viewer_client: FlaskClient,
                                                 catalog: CatalogWriter,
                                                 clips: list[Path]) -> None:
    catalog.footage(clips, camera="porch")
    response = viewer_client.get(f"/api/v1/timelapse/porch.mp4?start={iso(at(0))}"
                                 f"&end={iso(at(6))}&speed=1")
    assert response.status_code == 400
    assert response.get_json()["error"].startswith("speed:")
