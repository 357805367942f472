"""The RTSP test camera works with the stock ffmpeg CLI the hub uses to pull cameras."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import pytest

from nvrlib.ffmpeg_bin import ffmpeg_exe
from tests.support.rtsp import rtsp_server, unavailable_reason
from tests.support.requirements import require

require(unavailable_reason(), module_level=True)


def pull(url: str, out: Path, seconds: float = 3.0, timeout: float = 20.0) -> \
        subprocess.CompletedProcess[str]:
    """What the hub does: ``ffmpeg -rtsp_transport tcp -i URL -t S -c copy -f mpegts OUT``."""
    argv = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "warning",
            "-rtsp_transport", "tcp", "-i", url, "-t", f"{seconds:g}", "-c", "copy",
            "-f", "mpegts", "-y", str(out)]
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout, check=False)


def decode(path: Path) -> tuple[str, int, int, int]:
    """(codec, width, decoded frames, decode errors) of the first video stream."""
    frames = errors = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        codec, width = stream.codec_context.name, stream.codec_context.width
        for packet in container.demux(stream):
            try:
                frames += len(packet.decode())
            except av.error.FFmpegError:
                errors += 1
    return codec, width, frames, errors


def test_pull_h264_with_ffmpeg(tmp_path: Path) -> None:
    out = tmp_path / "out.ts"
    with rtsp_server() as cam:
        assert cam.url.startswith("rtsp://127.0.0.1:") and cam.url.endswith("/cam")
        done = pull(cam.url, out, seconds=3)
    assert done.returncode == 0, done.stderr
    codec, width, frames, errors = decode(out)
    assert (codec, width) == ("h264", 640)
    assert errors == 0
    assert 50 <= frames <= 100, frames  # ~3 s at 25 fps


@pytest.mark.parametrize("auth", ["digest", "basic"])
def test_credentials_in_url(tmp_path: Path, auth: str) -> None:
    with rtsp_server(path="/streams/main", user="admin", password="p@ss:w/rd",
                     auth=auth) as cam:
        assert cam.url == (f"rtsp://admin:p%40ss%3Aw%2Frd@127.0.0.1:{cam.port}"
                           "/streams/main")
        denied = pull(cam.plain_url, tmp_path / "none.ts", seconds=1)
        wrong = pull(cam.url_with("admin", "nope"), tmp_path / "wrong.ts", seconds=1)
        done = pull(cam.url, tmp_path / "ok.ts", seconds=1)
    assert denied.returncode != 0 and "401" in denied.stderr, denied.stderr
    assert wrong.returncode != 0 and "401" in wrong.stderr, wrong.stderr
    assert done.returncode == 0, done.stderr
    assert decode(tmp_path / "ok.ts")[2] > 0


def test_camera_drops_and_comes_back_on_same_port(tmp_path: Path) -> None:
    with rtsp_server() as cam:
        port, url = cam.port, cam.url
        cam.stop()
        assert not cam.running
        gone = pull(url, tmp_path / "gone.ts", seconds=1)
        assert gone.returncode != 0
        cam.start()
        assert (cam.port, cam.url) == (port, url)
        back = pull(cam.url, tmp_path / "back.ts", seconds=1)
        assert back.returncode == 0, back.stderr
        cam.kill()
        assert not cam.running
    assert decode(tmp_path / "back.ts")[2] > 0
