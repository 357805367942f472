"""Which ffmpeg the hub and the web app run, chosen on purpose (docs/design/architecture.md).

In order: ``$NVR_FFMPEG``; else the ``ffmpeg`` key of the hub's config file (the web app reads
the same file); else the imageio-ffmpeg wheel's static build, whose version requirements.txt
pins and the test suite runs by default; else, only where that wheel has no binary, the
system's on ``PATH``. A system ffmpeg is never picked up by accident: name it in the file.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

ENVIRONMENT = "NVR_FFMPEG"
_configured: str | None = None  # the config file's ``ffmpeg`` key, set once at start-up


class FfmpegNotFound(RuntimeError):
    """Neither a configured ffmpeg, the imageio-ffmpeg wheel, nor a system ffmpeg is there."""


def configure(path: str | None) -> None:
    """Use ``path`` (the config file's ``ffmpeg`` key) unless $NVR_FFMPEG names another."""
    global _configured  # one ffmpeg per process: set by the CLI before anything runs it
    _configured = path or None
    ffmpeg_exe.cache_clear()
    ffmpeg_version.cache_clear()


def is_executable_file(path: str) -> bool:
    """Tell whether ``path`` is an absolute path to a file this process may execute."""
    return os.path.isabs(path) and os.path.isfile(path) and os.access(path, os.X_OK)


def _choice() -> tuple[str, str]:
    """The ffmpeg to run and why: (path, origin)."""
    if os.environ.get(ENVIRONMENT):
        return os.environ[ENVIRONMENT], f"${ENVIRONMENT}"
    if _configured:
        return _configured, "the config file's ffmpeg key"
    try:
        import imageio_ffmpeg

        wheel = imageio_ffmpeg.get_ffmpeg_exe()  # (it falls back to PATH itself when it has none)
    except (ImportError, RuntimeError):
        wheel = None
    if wheel and os.path.dirname(imageio_ffmpeg.__file__) in os.path.abspath(wheel):
        return wheel, "the imageio-ffmpeg wheel's"
    system = wheel or shutil.which("ffmpeg")
    if system:
        return system, "the system's, first on PATH (the imageio-ffmpeg wheel has none here)"
    raise FfmpegNotFound("no ffmpeg: install the imageio-ffmpeg package or the system's ffmpeg")


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Return the path of the ffmpeg executable to run."""
    return _choice()[0]


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
    try:
        path, origin = _choice()
    except FfmpegNotFound as exc:
        return f"ffmpeg unusable: {exc}"
    return f"ffmpeg {ffmpeg_version()} at {path} ({origin})"
