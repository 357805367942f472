"""The ffmpeg builds the hub is tested with: the imageio-ffmpeg wheel's and Debian's own.

Debian's (5.1 on Debian 12, what a hub configured with ``ffmpeg = "/usr/bin/ffmpeg"`` runs) is
unpacked, not installed, by scripts/unpack-debian-ffmpeg.sh, which scripts/test.sh runs.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from nvrlib.ffmpeg_bin import ffmpeg_exe
from tests.support.requirements import require

DEFAULT_DIR = "/var/cache/nvr-tests/debian-ffmpeg"


def debian_ffmpeg() -> Path:
    """Where scripts/unpack-debian-ffmpeg.sh puts its wrapper."""
    return Path(os.environ.get("NVR_DEBIAN_FFMPEG_DIR", DEFAULT_DIR)) / "bin" / "ffmpeg"


def unavailable_reason() -> str | None:
    """Say why Debian's ffmpeg cannot run here, or None when it can."""
    exe = debian_ffmpeg()
    if not exe.exists():
        return f"Debian's ffmpeg is not unpacked at {exe}: run scripts/unpack-debian-ffmpeg.sh"
    result = subprocess.run([str(exe), "-hide_banner", "-version"], capture_output=True,
                            timeout=30, check=False)
    if result.returncode != 0:
        return f"{exe} does not run: {result.stderr.decode(errors='replace')[-300:]}"
    return None


BUILDS = ("wheel", "debian")  # pytest params: the ffmpeg builds the hub must work with


def build(name: str) -> str:
    """The ffmpeg of a build: the imageio-ffmpeg wheel's, or Debian's 5.1 (fails if missing)."""
    if name == "debian":
        require(unavailable_reason())
        return str(debian_ffmpeg())
    return ffmpeg_exe()


def debian_ffprobe() -> tuple[list[str], dict[str, str]]:
    """Debian's ffprobe and the environment it runs in (the .deb ships it beside ffmpeg).

    Installed Debian ffmpeg: /usr/bin/ffprobe. Unpacked: <dir>/root/usr/bin/ffprobe, with the
    loader pointed at the unpacked libraries as the ffmpeg wrapper does.
    """
    require(unavailable_reason())
    wrapper = debian_ffmpeg()
    root = wrapper.parents[1] / "root"
    exe = root / "usr" / "bin" / "ffprobe"
    if not exe.exists():  # the wrapper runs an installed Debian ffmpeg
        return ["/usr/bin/ffprobe"], dict(os.environ)
    lib = root / "usr" / "lib" / "x86_64-linux-gnu"
    # (none unpacked when the machine has Debian's ffmpeg libraries already, only not the tools)
    subs = sorted(lib.iterdir()) if lib.is_dir() else []
    paths = [str(lib), *(str(sub) for sub in subs if sub.is_dir())]
    if os.environ.get("LD_LIBRARY_PATH"):
        paths.append(os.environ["LD_LIBRARY_PATH"])
    return [str(exe)], {**os.environ, "LD_LIBRARY_PATH": ":".join(paths)}
