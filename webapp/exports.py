"""Exports of more than one file: a ZIP of several cameras' MP4s, and a timelapse MP4.

Both build on `webapp.media`: the same export plan (keyframe-exact cuts, gaps left out), the
same private temp folder under ``<root>/.exports``. The ZIP holds the stream-copied MP4s
(``ZIP_STORED``: video does not compress) and is streamed while it is written: no ZIP file
ever lands on disk. The timelapse decodes keyframes only (``-skip_frame nokey``), so its CPU
grows with the number of keyframes, not of frames; it re-encodes them on one thread at a
fixed frame rate, ``speed`` times faster than real time.
"""

from __future__ import annotations

import logging
import shutil
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from nvrlib.ffmpeg_bin import ffmpeg_exe

from . import media

logger = logging.getLogger(__name__)

ZIP_CHUNK = 1 << 20
TIMELAPSE_FPS = 30
TIMELAPSE_MAX_WIDTH = 1280  # a wider picture is scaled down: smaller file, less CPU
DEFAULT_SPEED = 60  # one hour in one minute
MIN_SPEED, MAX_SPEED = 2, 3600


@dataclass(frozen=True)
class ZipMember:
    """One camera's MP4 in an export ZIP: its name in the archive and its temp file."""

    name: str
    path: Path


class _Sink:
    """A write-only file for zipfile that hands over what was written (a non-seekable stream)."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._position = 0

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        """Nothing to flush: the chunks wait for `drain`."""

    def drain(self) -> bytes:
        """Return what was written since the last call."""
        data, self._chunks = b"".join(self._chunks), []
        return data


def stream_zip(members: Sequence[ZipMember], workdir: Path) -> Iterator[bytes]:
    """Yield a ZIP of ``members`` as it is written, then delete ``workdir`` (even if cut short)."""
    try:
        sink = _Sink()
        with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED,  # type: ignore[arg-type]
                             allowZip64=True) as archive:
            for member in members:
                with member.path.open("rb") as source, \
                        archive.open(member.name, "w", force_zip64=True) as entry:
                    while chunk := source.read(ZIP_CHUNK):
                        entry.write(chunk)
                        yield sink.drain()
                yield sink.drain()
        yield sink.drain()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def timelapse_arguments(list_file: Path, output: Path, speed: int) -> list[str]:
    """Return the ffmpeg command of a keyframes-only timelapse, ``speed`` times real time."""
    scale = f"scale='min({TIMELAPSE_MAX_WIDTH},iw)':-2"
    return [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "warning", "-y",
            "-threads", "1", "-skip_frame", "nokey",
            "-f", "concat", "-safe", "0", "-i", str(list_file),
            "-map", "0:v:0", "-an",
            "-vf", f"setpts=(PTS-STARTPTS)/{speed},fps={TIMELAPSE_FPS},{scale},format=yuv420p",
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "26", "-threads", "1",
            "-movflags", "+faststart", "-f", "mp4", str(output)]


def timelapse(plan: media.ExportPlan, workdir: Path, speed: int, timeout: float) -> Path:
    """Make ``workdir``/timelapse.mp4 from the plan's keyframes and return its path."""
    list_file = workdir / "parts.ffconcat"
    list_file.write_text(media.concat_list(plan.parts), encoding="utf-8")
    output = workdir / "timelapse.mp4"
    return media.run_ffmpeg(timelapse_arguments(list_file, output, speed), output, timeout)
