"""A recording's HLS playlist plays in ffmpeg, ffprobe and mpv with no special flags.

A real hub records a stock ffmpeg pusher; the web app is served by waitress on 127.0.0.1 on
the hub's catalog. Each player opens the playlist twice: with an ``Authorization`` header, and
with a stream link (no header, no cookie), as VLC or a TV would. Today's ffmpeg (the wheel's,
7+) refuses HLS segments whose URL has no media extension unless told ``-extension_picky 0``;
nobody here is told.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nvrlib.ffmpeg_bin import ffmpeg_exe
from tests.support.ffmpegs import debian_ffprobe
from tests.support.media import segments
from tests.support.procs import Hub, ffmpeg_pusher, running, wait_for
from tests.support.requirements import require
from tests.webapp.helpers import FAST_ARGON2, api_token_user, dispose
from tests.webapp.served import served
from webapp import create_app
from webapp.catalog_queries import iso_utc
from webapp.models import ROLE_VIEWER

pytestmark = pytest.mark.e2e

CAMERA = "porch"
PLAYER_TIMEOUT = 60
RATE = 10  # the pusher's frame rate


@dataclass(frozen=True)
class Served:
    """The served web app: the playlist's URL, the header that opens it, and a stream link."""

    playlist: str
    header: str
    link: str
    duration: float

    @property
    def frames(self) -> int:
        """The pictures a player must show at least: the footage's, less one for rounding."""
        return round(self.duration * RATE) - 1


def _footage(hub: Hub) -> list:
    return [row for row in segments(hub.db_path, CAMERA) if row.status == "ok"]


def _post_json(url: str, header: str) -> dict[str, str]:
    name, _, value = header.partition(": ")
    request = urllib.request.Request(url, method="POST", headers={name: value})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A hub with ~6 s of a camera's footage, and the web app serving it with waitress."""
    folder = tmp_path_factory.mktemp("play-everywhere")
    hub = Hub(folder, segment_seconds=2.0)
    try:
        hub.start()
        with running(pusher := ffmpeg_pusher(hub.url(CAMERA), seconds=7, size="320x240",
                                             rate=RATE)):
            pusher.proc.wait(60)
        rows = wait_for(lambda: len(_footage(hub)) >= 3 and _footage(hub), 30,
                        "3 finished segments")
        app = create_app({"SQLALCHEMY_DATABASE_URI": hub.db_url,
                          "STORAGE_ROOT": str(hub.storage), "SECRET_KEY": "e2e-secret",
                          "USERS_DB_URL": f"sqlite:///{folder / 'users.db'}",
                          "ARGON2_PARAMETERS": FAST_ARGON2})
        token = api_token_user(app, "tv", ROLE_VIEWER)
        try:
            with served(app, threads=4) as port:
                base = f"http://127.0.0.1:{port}/api/v1/playback/{CAMERA}"
                query = f"start={iso_utc(rows[0].start)}&end={iso_utc(rows[-1].end)}"
                header = f"Authorization: Bearer {token}"
                link = _post_json(f"{base}/link?{query}", header)["url"]
                yield Served(f"{base}.m3u8?{query}", header, link,
                             (rows[-1].end - rows[0].start).total_seconds())
        finally:
            dispose(app)
    finally:
        for run in hub.runs:
            if run.proc.poll() is None:
                run.terminate(timeout=30)
            run.kill_group()


def _run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=PLAYER_TIMEOUT,
                          stdin=subprocess.DEVNULL, env=env, check=False)
    assert done.returncode == 0, f"{argv[0]} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done


def _with_header(web: Served) -> list[tuple[str, str | None]]:
    return [(web.playlist, web.header), (web.link, None)]


def test_ffmpeg_decodes_every_frame_with_a_header_or_a_link(web: Served) -> None:
    for url, header in _with_header(web):
        headers = ["-headers", f"{header}\r\n"] if header else []
        done = _run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-stats",
                     *headers, "-i", url, "-map", "0:v", "-f", "null", "-"])
        frames = re.findall(r"frame=\s*(\d+)", done.stderr)
        assert frames and int(frames[-1]) >= web.frames, done.stderr


def test_debian_ffprobe_reads_the_playlist_with_a_header_or_a_link(web: Served) -> None:
    command, env = debian_ffprobe()
    for url, header in _with_header(web):
        headers = ["-headers", f"{header}\r\n"] if header else []
        done = _run([*command, "-hide_banner", "-loglevel", "error", *headers,
                     "-show_entries", "format=format_name,duration", "-of", "json", url], env)
        fmt = json.loads(done.stdout)["format"]
        assert fmt["format_name"] == "hls"
        assert float(fmt["duration"]) == pytest.approx(web.duration, abs=1.0)


def test_mpv_plays_every_frame_with_a_header_or_a_link(web: Served, tmp_path: Path) -> None:
    require(None if Path("/usr/bin/mpv").exists() else "mpv is not installed")
    for index, (url, header) in enumerate(_with_header(web)):
        headers = [f"--http-header-fields={header}"] if header else []
        pictures = tmp_path / str(index)  # one PNG per picture mpv shows
        done = _run(["/usr/bin/mpv", "--no-config", "--ao=null", "--untimed",
                     "--vo=image", "--vo-image-format=png", "--vo-image-png-compression=0",
                     f"--vo-image-outdir={pictures}", "--msg-level=all=info", *headers, url])
        assert "Video --vid=1 (h264 320x240" in done.stdout, done.stdout
        assert "Exiting... (End of file)" in done.stdout, done.stdout
        assert len(list(pictures.iterdir())) >= web.frames, done.stdout
