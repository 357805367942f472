"""What the hub learns from a segment's head: the video it holds, and whether sound goes along."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from nvrlib.ffmpeg_bin import ffmpeg_exe
from recorder.store.probe import probe
from recorder.supervise import ffmpeg as hub_ffmpeg


def segment(path: Path, sound: str | None) -> Path:
    """One second of H.264 in MPEG-TS, with a tone in ``sound`` (an audio encoder) or none."""
    tone = ["-f", "lavfi", "-i", "sine=sample_rate=16000"] if sound else []
    argv = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "lavfi",
            "-i", "testsrc2=size=160x90:rate=15", *tone, "-t", "1", "-c:v", "libx264",
            "-preset", "ultrafast", *(["-c:a", sound] if sound else []), "-f", "mpegts",
            str(path)]
    subprocess.run(argv, check=True, capture_output=True, timeout=60)
    return path


@pytest.mark.parametrize(("sound", "codec", "live_mode"), [
    (None, "", "none"), ("aac", "aac", "copy"), ("mp2", "mp2", "encode")])
def test_the_head_of_a_segment_tells_the_sound_codec_and_so_how_live_carries_it(
        tmp_path: Path, sound: str | None, codec: str, live_mode: str) -> None:
    result = probe(segment(tmp_path / "a.ts", sound), head_only=True)
    assert (result.codec, result.width, result.height) == ("h264", 160, 90)
    assert result.audio_codec == codec
    assert hub_ffmpeg.live_audio_mode(result.audio_codec, pulled=False) == live_mode
