"""Validation of camera names, which end up in paths, URLs and ffmpeg arguments."""

from __future__ import annotations

import re

MAX_NAME_LENGTH = 64
DEFAULT_HUB = "main"  # the id of a hub whose config names none, and of every pre-0007 row

# Letters, digits, '_', '-' and '.', starting with a letter or digit: nothing that a
# shell, a path, a URL or ffmpeg's own option and pattern syntax (%d, -flag) could read.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class InvalidName(ValueError):
    """A camera name that fails the allowlist."""


def validate_camera_name(name: str) -> str:
    """Return ``name`` unchanged if it is a safe camera name, else raise InvalidName."""
    if not isinstance(name, str) or not name:
        raise InvalidName("camera name is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(f"camera name is longer than {MAX_NAME_LENGTH} characters")
    if not _NAME_RE.fullmatch(name):
        raise InvalidName(
            "camera name may only hold letters, digits, '_', '-' and '.', "
            "and must start with a letter or digit"
        )
    if ".." in name:
        raise InvalidName("camera name must not contain '..'")
    return name


def is_valid_camera_name(name: str) -> bool:
    """Tell whether ``name`` passes validate_camera_name."""
    try:
        validate_camera_name(name)
    except InvalidName:
        return False
    return True


def slugify(text: str) -> str:
    """Turn free text (a location, a file name, a URL host) into a camera-name fragment."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-._")
    slug = re.sub(r"\.{2,}", ".", slug)
    return slug[:MAX_NAME_LENGTH] or "camera"


_HUB_ID_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


def validate_hub_id(hub_id: str) -> str:
    """Return ``hub_id`` if it is a valid hub id (lower-case letters, digits, '_', '-'; 1-32)."""
    if not isinstance(hub_id, str) or not _HUB_ID_RE.fullmatch(hub_id):
        raise InvalidName("a hub id is 1 to 32 lower-case letters, digits, '_' or '-', "
                          "starting with a letter or digit")
    return hub_id
