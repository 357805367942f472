"""The live view: the camera grid, one camera, and the hub's rolling HLS served safely."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from nvrlib.ffmpeg_bin import ffmpeg_exe
from recorder.store import storage as hub_storage
from recorder.supervise import ffmpeg as hub_ffmpeg
from recorder.supervise import live as hub_live
from webapp.live import files

from .helpers import FakeClock
from .test_api_cameras import (  # noqa: F401  (app, as_admin, as_viewer: fixtures)
    add_camera, app, as_admin, as_viewer,
)

RUN = "0a1b2c3d"


@pytest.fixture(scope="session")
def hls_pieces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A live HLS as the hub writes it: 1-second MPEG-TS pieces of testsrc2, and the playlist."""
    folder = tmp_path_factory.mktemp("hls")
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "lavfi",
         "-i", "testsrc2=size=320x180:rate=25", "-t", "4", "-c:v", "libx264",
         "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p",
         "-f", "hls", "-hls_time", "1", "-hls_list_size", "5",
         "-hls_flags", "delete_segments+omit_endlist+temp_file",
         "-hls_segment_filename", str(folder / f"{RUN}-%d.ts"), str(folder / "live.m3u8")],
        check=True, timeout=60)
    return folder


@pytest.fixture
def live_porch(app: Flask, hls_pieces: Path) -> Path:
    """Camera porch, online, with a current live HLS in the storage root."""
    add_camera(app, "porch", location="Front door", fps=25.0, bitrate_bps=1_500_000)
    folder = Path(app.config["STORAGE_ROOT"]) / ".live" / "porch"
    # copied as new files: the pieces were made once per session, and a playlist whose mtime
    # is over 10 s old is a stopped live view (webapp.live.files.PLAYLIST_STALE_AFTER)
    shutil.copytree(hls_pieces, folder, copy_function=shutil.copy)
    return folder


def playlist_pieces(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_the_names_match_the_hubs() -> None:
    assert files.LIVE_DIR == hub_storage.LIVE
    assert files.PLAYLIST == hub_ffmpeg.LIVE_PLAYLIST
    assert files.WANTED_MARK == hub_live.WANTED_MARK


# -- the pages ---------------------------------------------------------------------------------

def test_the_grid_shows_every_recorded_camera_with_its_status(app: Flask, as_viewer: FlaskClient,
                                                              live_porch: Path) -> None:
    add_camera(app, "shed", state="stopped", online=False,
               offline_since=dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.timezone.utc))
    add_camera(app, "banned", approval="rejected", enabled=False)
    html = as_viewer.get("/live/").get_data(as_text=True)
    assert 'data-live-camera="porch"' in html and 'data-playlist="/live/porch/live.m3u8"' in html
    assert 'data-live-camera="shed"' in html and "banned" not in html
    assert "25.0 fps" in html and "1.5 Mbit/s" in html and "Front door" in html
    assert 'Offline since <time datetime="2026-03-01T09:30:00+00:00"' in html
    assert 'data-status-url="/api/v1/cameras"' in html
    assert 'data-wall-url="/live/_wall"' in html and "Fit to screen" in html and "Enlarge" in html


def test_the_live_pages_load_hls_js_and_no_inline_script(as_viewer: FlaskClient,
                                                         live_porch: Path) -> None:
    for url in ("/live/", "/live/porch"):
        html = as_viewer.get(url).get_data(as_text=True)
        assert re.search(r"/static/vendor/hls/hls\.min\.[0-9a-f]{10}\.js", html), url
        assert re.search(r"/static/js/live\.[0-9a-f]{10}\.js", html), url
        assert re.search(r"/static/js/live_mse\.[0-9a-f]{10}\.js", html), url
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), url  # the CSP forbids them
        assert " style=" not in html


def test_one_camera_live(as_viewer: FlaskClient, live_porch: Path) -> None:
    response = as_viewer.get("/live/porch")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'data-playlist="/live/porch/live.m3u8"' in html and "controls" in html
    assert 'data-stream="/live/porch/live.mp4"' in html  # the MSE player's stream
    assert "Manage cameras" not in html  # admins only


def test_the_admin_gets_a_link_to_the_panel(as_admin: FlaskClient, live_porch: Path) -> None:
    assert "Manage cameras" in as_admin.get("/live/porch").get_data(as_text=True)


@pytest.mark.parametrize("url", ["/live/nobody", "/live/..", "/live/a%20b"])
def test_an_unknown_camera_is_404(as_viewer: FlaskClient, url: str) -> None:
    assert as_viewer.get(url).status_code == 404


def test_offline_and_silent_cameras_say_so(app: Flask, as_viewer: FlaskClient,
                                           clock: FakeClock) -> None:
    add_camera(app, "shed", state="stopped", online=False,
               offline_since=dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.timezone.utc))
    add_camera(app, "porch", updated_at=clock.now - dt.timedelta(seconds=30))
    add_camera(app, "off", enabled=False, state="stopped", online=False)
    html = as_viewer.get("/live/").get_data(as_text=True)
    assert "Offline since" in html and "The hub is not reporting (last heard" in html
    assert "Recording is disabled" in html
    # the overlay of an online camera is hidden until the player has trouble
    single = as_viewer.get("/live/shed").get_data(as_text=True)
    assert re.search(r"data-live-overlay>\s*<span data-live-message>Offline since", single)


def test_names_and_locations_are_escaped(app: Flask, as_viewer: FlaskClient) -> None:
    add_camera(app, "porch", location="<img src=x onerror=alert(1)>")
    for url in ("/live/", "/live/porch"):
        html = as_viewer.get(url).get_data(as_text=True)
        assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_anonymous_users_are_sent_to_log_in(app: Flask, live_porch: Path) -> None:
    client = app.test_client()
    for url in ("/live/", "/live/porch", "/live/porch/live.m3u8", f"/live/porch/{RUN}-0.ts",
                "/live/porch/live.mp4", "/live/_wall?camera=porch"):
        response = client.get(url)
        assert response.status_code == 302 and "/auth/login" in response.headers["Location"]


# -- the files ---------------------------------------------------------------------------------

def test_the_playlist_is_served_uncached_and_names_pieces_that_are_served(
        as_viewer: FlaskClient, live_porch: Path) -> None:
    response = as_viewer.get("/live/porch/live.m3u8")
    assert response.status_code == 200
    assert response.mimetype == "application/vnd.apple.mpegurl"
    assert response.headers["Cache-Control"] == "no-cache"
    text = response.get_data(as_text=True)
    assert text.startswith("#EXTM3U") and "#EXT-X-TARGETDURATION:1" in text
    pieces = playlist_pieces(text)
    assert 3 <= len(pieces) <= 6
    for name in pieces:
        piece = as_viewer.get(f"/live/porch/{name}")
        assert piece.status_code == 200 and piece.mimetype == "video/mp2t"
        assert piece.headers["Cache-Control"] == "private, max-age=60"
        data = piece.get_data()
        assert data == (live_porch / name).read_bytes() and data[:1] == b"\x47"


def test_a_camera_that_is_not_live_is_404_with_a_clear_message(app: Flask,
                                                               as_viewer: FlaskClient) -> None:
    add_camera(app, "porch")
    response = as_viewer.get("/live/porch/live.m3u8")
    assert response.status_code == 404
    assert "camera porch is not live" in response.get_data(as_text=True)


def test_fetching_the_playlist_asks_the_hub_for_the_live_view(app: Flask,
                                                              as_viewer: FlaskClient) -> None:
    add_camera(app, "porch")
    folder = Path(app.config["STORAGE_ROOT"]) / ".live" / "porch"
    assert as_viewer.get("/live/porch/live.m3u8").status_code == 404  # the hub starts it now
    mark = folder / ".wanted"
    assert hub_live.wanted(folder), "the hub's own test of the mark"
    assert hub_live.watched(folder.parent) == {"porch"}, "the hub's scan of every mark"
    old = time.time() - 60
    os.utime(mark, (old, old))
    assert not hub_live.wanted(folder)
    assert hub_live.watched(folder.parent) == set(), "a stale mark is no viewer"
    as_viewer.get("/live/porch/live.m3u8")
    assert hub_live.wanted(folder), "each fetch keeps the live view going"
    assert hub_live.watched(folder.parent) == {"porch"}
    assert hub_live.watched(folder.parent / "missing") == set(), "no live folder yet: no viewer"


def test_no_mark_is_made_for_a_camera_that_does_not_exist(app: Flask,
                                                          as_viewer: FlaskClient) -> None:
    response = as_viewer.get("/live/nobody/live.m3u8")
    assert response.status_code == 404 and "no camera named" in response.get_data(as_text=True)
    assert not (Path(app.config["STORAGE_ROOT"]) / ".live" / "nobody").exists()


def test_a_storage_the_web_app_cannot_write_is_reported(app: Flask, as_viewer: FlaskClient) -> None:
    add_camera(app, "porch")
    live = Path(app.config["STORAGE_ROOT"]) / ".live"
    live.parent.mkdir(parents=True, exist_ok=True)
    live.write_text("not a folder")  # any OSError will do; root ignores permission bits
    response = as_viewer.get("/live/porch/live.m3u8")
    assert response.status_code == 404
    assert "the web app cannot write .live/porch/.wanted" in response.get_data(as_text=True)


def test_a_playlist_left_behind_by_a_dead_hub_is_not_live(as_viewer: FlaskClient,
                                                          live_porch: Path) -> None:
    old = time.time() - 60
    os.utime(live_porch / "live.m3u8", (old, old))
    response = as_viewer.get("/live/porch/live.m3u8")
    assert response.status_code == 404
    assert "its live stream stopped 60 s ago" in response.get_data(as_text=True)


def test_a_rolled_away_piece_is_404(as_viewer: FlaskClient, live_porch: Path) -> None:
    response = as_viewer.get(f"/live/porch/{RUN}-99.ts")
    assert response.status_code == 404 and "is gone" in response.get_data(as_text=True)


@pytest.mark.parametrize("url", [
    "/live/..%2F..%2Fetc/passwd",
    "/live/..%2F..%2Fetc/live.m3u8",
    "/live/porch/..%2Fx.ts",
    "/live/porch/..%2F..%2Fnvr.db",
    "/live/porch/%2E%2E",
    "/live/%2E%2E/live.m3u8",
    "/live/.live/live.m3u8",
    "/live/porch/live.m3u8.tmp",
    "/live/porch/.wanted",
    f"/live/porch/{RUN}-0.ts.tmp",
    "/live/porch/x.mp4",
    "/live/porch/.x.ts",
    "/live/porch/a.b.ts",
    "/live/porch/%00.ts",
    "/live/-porch/live.m3u8",
    "/live/porch%2F..%2F..%2F/live.m3u8",
])
def test_paths_outside_the_live_files_are_refused(as_viewer: FlaskClient, live_porch: Path,
                                                  url: str) -> None:
    (live_porch / "live.m3u8.tmp").write_text("#EXTM3U\n")
    response = as_viewer.get(url)
    assert response.status_code in (400, 404), url
    assert b"#EXTM3U" not in response.get_data() and b"root:" not in response.get_data()


def test_a_symlink_out_of_the_live_folder_is_not_followed(as_viewer: FlaskClient,
                                                          live_porch: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.ts"
    secret.write_bytes(b"\x47secret")
    (live_porch / "evil.ts").symlink_to(secret)
    other = live_porch.parent / "other"
    other.symlink_to(tmp_path)
    (tmp_path / "live.m3u8").write_text("#EXTM3U\nsecret\n")
    assert as_viewer.get("/live/porch/evil.ts").status_code == 404
    assert as_viewer.get("/live/other/live.m3u8").status_code == 404
    assert as_viewer.get("/live/other/secret.ts").status_code == 404


@pytest.mark.parametrize("camera", ["nobody", "a%20b"])
def test_the_stream_of_an_unknown_camera_is_404_and_makes_no_mark(
        app: Flask, as_viewer: FlaskClient, camera: str) -> None:
    response = as_viewer.get(f"/live/{camera}/live.mp4")
    assert response.status_code == 404
    assert not (Path(app.config["STORAGE_ROOT"]) / ".live" / "nobody").exists()


def test_opening_the_stream_asks_the_hub_for_the_live_view_at_once(
        app: Flask, as_viewer: FlaskClient) -> None:
    add_camera(app, "porch")
    response = as_viewer.get("/live/porch/live.mp4", buffered=False)
    try:
        assert response.status_code == 200 and response.mimetype == "video/mp4"
        assert response.headers["Cache-Control"] == "no-store"
        mark = Path(app.config["STORAGE_ROOT"]) / ".live" / "porch" / hub_live.WANTED_MARK
        assert mark.exists(), "marked before the first byte: the hub starts its tap now"
    finally:
        response.close()


@pytest.mark.parametrize("query", ["", "?" + "&".join(["camera=porch"] * 17)])
def test_a_wall_of_no_or_too_many_cameras_is_400_naming_the_parameter(
        as_viewer: FlaskClient, live_porch: Path, query: str) -> None:
    response = as_viewer.get(f"/live/_wall{query}")
    assert response.status_code == 400 and "camera" in response.get_data(as_text=True)


def test_a_wall_with_an_unknown_camera_is_404(as_viewer: FlaskClient, live_porch: Path) -> None:
    assert as_viewer.get("/live/_wall?camera=porch&camera=nobody").status_code == 404
