"""Find the ffmpeg binary: the system's if installed, else the imageio-ffmpeg wheel's."""

from __future__ import annotations

import functools
import os
import shutil


class FfmpegNotFound(RuntimeError):
    """Neither a system ffmpeg nor the imageio-ffmpeg wheel is available."""


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Return the path of the ffmpeg executable to run ($NVR_FFMPEG overrides)."""
    override = os.environ.get("NVR_FFMPEG")
    if override:
        return override
    system = shutil.which("ffmpeg")
    if system:
        return system
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - dependency is in requirements.txt
        raise FfmpegNotFound("install ffmpeg or the imageio-ffmpeg package") from exc
    return imageio_ffmpeg.get_ffmpeg_exe()
