"""What a --camera argument names, how to show it without secrets, and its default name."""

from __future__ import annotations

import dataclasses
import re
from pathlib import PurePath
from urllib.parse import urlsplit

from nvrlib.names import slugify, validate_camera_name
from nvrlib.redact import redact

TEST = "test"
DEVICE = "device"
FILE = "file"
URL = "url"

_URL_SCHEMES = ("rtsp", "rtsps", "http", "https")
_DEVICE_RE = re.compile(r"/dev/video(\d+)")


@dataclasses.dataclass(frozen=True)
class Source:
    """One camera source: its kind (test, device, file or url) and the text that opens it."""

    kind: str
    value: str

    @property
    def index(self) -> int | None:
        """Return the V4L2 index of a device given as a number, else None."""
        return int(self.value) if self.kind == DEVICE and self.value.isdigit() else None

    def display(self) -> str:
        """Return the source as safe to log: URL credentials and secret parameters hidden."""
        return redact(self.value) if self.kind == URL else self.value


def parse_source(text: str) -> Source:
    """Classify a --camera argument as test pattern, V4L2 device, URL or video file."""
    text = text.strip()
    if text == TEST:
        return Source(TEST, text)
    if text.isdigit() or text.startswith("/dev/"):
        return Source(DEVICE, text)
    if urlsplit(text).scheme.lower() in _URL_SCHEMES:
        return Source(URL, text)
    return Source(FILE, text)


def source_label(source: Source) -> str:
    """Return the short word a default camera name uses for a source (test, video0, host)."""
    if source.kind == TEST:
        return "test"
    if source.kind == DEVICE:
        match = _DEVICE_RE.fullmatch(source.value)
        if source.index is not None or match:
            return f"video{source.index if source.index is not None else match.group(1)}"
        return PurePath(source.value).name
    if source.kind == URL:
        return urlsplit(source.value).hostname or "camera"
    return PurePath(source.value).stem


def default_name(location: str, source: Source) -> str:
    """Derive a valid camera name from the location and the source, e.g. driveway-video0."""
    # Slugify each part first, so a stray '-' at a part's edge cannot double the separator.
    return validate_camera_name(slugify(f"{slugify(location)}-{slugify(source_label(source))}"))
