"""Find the ffmpeg binary: the system's if installed, else the imageio-ffmpeg wheel's."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess


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


@functools.lru_cache(maxsize=1)
def ffmpeg_version() -> str:
    """Return the version ffmpeg reports (e.g. ``5.1.6-0+deb12u1``), or why it cannot say."""
    try:
        done = subprocess.run([ffmpeg_exe(), "-hide_banner", "-version"], capture_output=True,
                              text=True, timeout=10, stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired, FfmpegNotFound) as exc:
        return f"unusable: {exc}"
    words = done.stdout.split()
    # "ffmpeg version 5.1.6-0+deb12u1 Copyright ..."
    if len(words) >= 3 and words[1] == "version":
        return words[2]
    return f"unusable: exit status {done.returncode}"


def describe_ffmpeg() -> str:
    """Say which ffmpeg runs and why, for the start-up log of the hub and the web app."""
    if os.environ.get("NVR_FFMPEG"):
        origin = "$NVR_FFMPEG"
    elif shutil.which("ffmpeg"):
        origin = "the system's, first on PATH"
    else:
        origin = "the imageio-ffmpeg wheel's"
    return f"ffmpeg {ffmpeg_version()} at {ffmpeg_exe()} ({origin})"
