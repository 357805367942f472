"""Export: any range of a camera as one MP4, stream-copied, named after camera, place and time."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path

import av
import pytest
from flask import Flask
from flask.testing import FlaskClient

from webapp.media import EXPORTS_DIR, export_filename

from .helpers import AuthActions, Account
from .test_recordings_support import (  # noqa: F401  (fixtures)
    T0, CatalogWriter, at, catalog, clips, iso, viewer_client,
)

FILENAME = re.compile(r'attachment; filename="([A-Za-z0-9_.-]+\.mp4)"')


def export(client: FlaskClient, start: dt.datetime, end: dt.datetime, camera: str = "porch"):
    """GET an export, reading the whole body."""
    return client.get(f"/api/v1/export/{camera}.mp4?start={iso(start)}&end={iso(end)}",
                      buffered=True)


def mp4_facts(data: bytes, folder: Path) -> tuple[float, int, str]:
    """Return (duration in s, video frames, codec) of an MP4 held in ``data``."""
    path = folder / "check.mp4"
    path.write_bytes(data)
    with av.open(str(path)) as container:
        assert container.format.name.startswith("mov")
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.demux(stream) if _.size)
        return container.duration / 1e6, frames, stream.codec_context.name


def leftovers(app: Flask) -> list[Path]:
    folder = Path(app.config["STORAGE_ROOT"]) / EXPORTS_DIR
    return list(folder.iterdir()) if folder.exists() else []


@pytest.mark.both_ffmpegs
def test_export_of_the_whole_footage_is_one_mp4_named_after_camera_place_and_time(
        app: Flask, viewer_client: FlaskClient, catalog: CatalogWriter, clips: list[Path],
        tmp_path: Path) -> None:
    catalog.footage(clips)
    response = export(viewer_client, at(-60), at(60))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type == "video/mp4"
    match = FILENAME.fullmatch(response.headers["Content-Disposition"])
    assert match
    assert match.group(1) == "porch_Front-porch_20260301T100000Z_20260301T100006Z.mp4"
    assert int(response.headers["Content-Length"]) == len(response.get_data())
    duration, frames, codec = mp4_facts(response.get_data(), tmp_path)
    assert duration == pytest.approx(6.0, abs=0.2)
    assert frames == 60 and codec == "h264"  # every frame, copied
    assert leftovers(app) == []


@pytest.mark.both_ffmpegs
def test_export_cuts_at_the_keyframe_before_start_and_at_end(
        viewer_client: FlaskClient, catalog: CatalogWriter, clips: list[Path],
        tmp_path: Path) -> None:
    catalog.footage(clips)
    # Keyframes come every second: 2.5 s in, the export starts at the one at 2.0 s.
    response = export(viewer_client, at(2.5), at(5))
    assert response.status_code == 200
    duration, _, _ = mp4_facts(response.get_data(), tmp_path)
    assert duration == pytest.approx(3.0, abs=0.2)
    assert FILENAME.fullmatch(response.headers["Content-Disposition"]).group(1) == (
        "porch_Front-porch_20260301T100002Z_20260301T100005Z.mp4")


@pytest.mark.both_ffmpegs
def test_export_leaves_gaps_out(viewer_client: FlaskClient, catalog: CatalogWriter,
                                clips: list[Path], tmp_path: Path) -> None:
    catalog.camera("porch", "Front porch")
    catalog.run("porch", "run1")
    catalog.segment("porch", at(0), run_id="run1", source=clips[0])
    catalog.segment("porch", at(60), run_id="run1", source=clips[2])
    response = export(viewer_client, at(0), at(120))
    assert response.status_code == 200
    duration, frames, _ = mp4_facts(response.get_data(), tmp_path)
    assert duration == pytest.approx(4.0, abs=0.2) and frames == 40


@pytest.mark.both_ffmpegs
def test_the_temp_folder_is_gone_before_the_download_is_read(
        app: Flask, viewer_client: FlaskClient, catalog: CatalogWriter,
        clips: list[Path]) -> None:
    catalog.footage(clips)
    response = viewer_client.get(f"/api/v1/export/porch.mp4?start={iso(at(0))}&end={iso(at(6))}")
    assert response.status_code == 200
    assert leftovers(app) == []  # a client that goes away now leaves nothing behind
    response.close()


@pytest.mark.parametrize(("query", "status", "message"), [
    ("start=2026-03-01T10:00:00Z", 400, "end: required"),
    ("end=2026-03-01T10:00:00Z", 400, "start: required"),
    ("start=2026-03-01T10:00:00Z&end=2026-03-02T10:00:00.001Z", 400, "end: the range is longer"),
    ("start=2026-03-01T10:00:10Z&end=2026-03-01T10:00:00Z", 400, "end: must be after start"),
    ("start=2026-03-01T08:00:00Z&end=2026-03-01T09:00:00Z", 404, "no footage of porch"),
])
def test_bad_exports(viewer_client: FlaskClient, catalog: CatalogWriter, query: str, status: int,
                     message: str) -> None:
    catalog.segment("porch", at(0))
    response = viewer_client.get(f"/api/v1/export/porch.mp4?{query}")
    assert response.status_code == status
    assert response.get_json()["error"].startswith(message)


def test_export_of_an_unknown_camera_or_of_files_not_on_disk_is_404(
        viewer_client: FlaskClient, catalog: CatalogWriter) -> None:
    catalog.segment("porch", at(0), path="porch/gone.ts")
    assert export(viewer_client, at(0), at(2), camera="nobody").status_code == 404
    response = export(viewer_client, at(0), at(2))
    assert response.status_code == 404
    assert "not on disk" in response.get_json()["error"]


@pytest.mark.both_ffmpegs
def test_a_file_ffmpeg_cannot_read_gives_500_and_leaves_nothing(
        app: Flask, viewer_client: FlaskClient, catalog: CatalogWriter, tmp_path: Path) -> None:
    junk = tmp_path / "junk.ts"
    junk.write_bytes(b"not a video" * 100)
    catalog.segment("porch", at(0), source=junk)
    response = export(viewer_client, at(0), at(2))
    assert response.status_code == 500
    assert response.get_json()["error"].startswith("export failed")
    assert leftovers(app) == []


def test_too_many_exports_at_once_get_503(make_app: Callable[..., Flask], viewer_user: Account,
                                          clips: list[Path]) -> None:
    app = make_app(EXPORT_CONCURRENCY=0)
    CatalogWriter(app).footage(clips)
    client = app.test_client()
    AuthActions(client).login(viewer_user)
    response = export(client, at(0), at(6))
    assert response.status_code == 503 and response.headers["Retry-After"]


@pytest.mark.parametrize(("camera", "location", "expected"), [
    ("porch", "Front door / porch <1>", "porch_Front-door-porch-1_"),
    ("yard", "", "yard_unknown_"),
    ("cam.1", "Éntrée 'quoted'", "cam.1_ntr-e-quoted_"),
    ("cam", "../../etc", "cam_etc_"),
])
def test_export_names_hold_only_safe_characters(camera: str, location: str,
                                                expected: str) -> None:
    name = export_filename(camera, location, T0, at(60))
    assert name == f"{expected}20260301T100000Z_20260301T100100Z.mp4"
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", name)
