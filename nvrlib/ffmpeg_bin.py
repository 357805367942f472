"""Which ffmpeg the hub and the web app run, chosen on purpose (docs/design/architecture.md).

In order: ``$NVR_FFMPEG``; else the ``ffmpeg`` key of the hub's config file (the web app reads
the same file); else the imageio-ffmpeg wheel's static build, whose version requirements.txt
pins and the test suite runs by default; else, only where that wheel has no binary, the
system's on ``PATH``. A system ffmpeg is never picked up by accident: name it in the file.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
import threading

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
    wheel = _wheel_binary()
    if wheel:
        return wheel, "the imageio-ffmpeg wheel's"
    system = shutil.which("ffmpeg")
    if system:
        return system, "the system's, first on PATH (the imageio-ffmpeg wheel has none here)"
    raise FfmpegNotFound("no ffmpeg: install the imageio-ffmpeg package or the system's ffmpeg")


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Return the path of the ffmpeg executable to run."""
    return _choice()[0]


def _wheel_binary() -> str | None:
    """The imageio-ffmpeg wheel's own static build, found without running it (None: none here).

    imageio_ffmpeg.get_ffmpeg_exe() runs the binary to check it, and falls back to PATH: every
    hub, web app and test process paid one start of a 170-MB executable for it (0.3 s, and
    seconds on a loaded machine). The start-up log's `describe_ffmpeg` runs it once anyway.
    """
    try:
        from importlib import resources

        folder = resources.files("imageio_ffmpeg.binaries")
        names = sorted(entry.name for entry in folder.iterdir())
    except (ImportError, OSError, TypeError):
        return None
    for name in names:
        path = str(folder / name)
        if name.startswith("ffmpeg-") and is_executable_file(path):
            return path
    return None


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


def log_ffmpeg_in_background(logger: logging.Logger) -> None:
    """Log `describe_ffmpeg` from a thread: ffmpeg -version took seconds on a loaded machine,
    and a starting hub or web app need not wait for the line."""
    threading.Thread(target=lambda: logger.info("%s", describe_ffmpeg()),
                     name="describe-ffmpeg", daemon=True).start()
