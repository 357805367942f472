"""Both ffmpeg builds (Debian's 5.1, the wheel's 9.x) pull an RTSP camera through the hidden
input: the URL, password included, is never in their command line, and the segments it cuts
follow each other from PTS 0 as with a plain -i URL."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from recorder.supervise.ffmpeg import hidden_input_args, open_hidden_input, parse_segment_list_line
from tests.support.ffmpegs import BUILDS, build
from tests.support.procs import wait_for
from tests.support.requirements import require
from tests.support.rtsp import RtspServer, rtsp_server
from tests.support.rtsp import unavailable_reason as rtsp_missing

require(rtsp_missing(), module_level=True)

PASSWORD = "it's-Pw-3391"  # a quote, to show the list's quoting holds
QUERY_SECRET = "Qs-3392"


@pytest.fixture(scope="module")
def camera() -> Iterator[RtspServer]:
    with rtsp_server(user="admin", password=PASSWORD) as server:
        yield server


@pytest.fixture(params=BUILDS)
def ffmpeg_build(request: pytest.FixtureRequest) -> str:
    return build(request.param)


def test_ffmpeg_pulls_through_a_pipe_with_no_secret_in_its_command_line(
        camera: RtspServer, ffmpeg_build: str, tmp_path: Path) -> None:
    input_fd = open_hidden_input(f"{camera.url}?user=admin&password={QUERY_SECRET}")
    segment_list = tmp_path / "list.csv"
    argv = [ffmpeg_build, "-hide_banner", "-nostdin", "-loglevel", "error",
            *hidden_input_args(input_fd), "-map", "0:v:0", "-c", "copy", "-copyts",
            "-frames:v", "40", "-f", "segment", "-segment_time", "1", "-segment_time_delta", "0.1",
            "-segment_list", str(segment_list), "-segment_list_type", "csv",
            str(tmp_path / "s-%03d.ts")]
    proc = subprocess.Popen(argv, pass_fds=(input_fd,), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    os.close(input_fd)
    try:
        cmdline = wait_for(lambda: Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode(
            errors="replace"), 10, "ffmpeg's command line")  # empty for a moment after the fork
        _, errors = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "pipe:" in cmdline
    assert PASSWORD not in cmdline and "Pw-3391" not in cmdline and QUERY_SECRET not in cmdline
    assert proc.returncode == 0, errors.decode(errors="replace")
    cuts = [parse_segment_list_line(line) for line in segment_list.read_text().splitlines()]
    assert len(cuts) >= 2 and abs(cuts[0][1]) < 0.1  # the session's clock starts at 0
    for before, after in zip(cuts, cuts[1:]):
        assert after[1] == pytest.approx(before[2], abs=0.001)  # no gap, no overlap
