"""Tests that need a system package (Chromium, GStreamer's RTSP server, PostgreSQL).

scripts/test.sh installs those packages, so a missing one is a broken set-up and fails the
test with the reason: a skipped test proves nothing. A developer who knowingly runs without
them sets NVR_ALLOW_SKIPS=1 to skip such tests instead.
"""

from __future__ import annotations

import os

import pytest

ALLOW_SKIPS = "NVR_ALLOW_SKIPS"


def require(missing: str | None, module_level: bool = False) -> None:
    """Fail (or, with NVR_ALLOW_SKIPS=1, skip) when ``missing`` names what is not installed."""
    if not missing:
        return
    if os.environ.get(ALLOW_SKIPS) == "1":
        pytest.skip(missing, allow_module_level=module_level)
    pytest.fail(f"{missing} (install with scripts/install-test-deps.sh, or set "
                f"{ALLOW_SKIPS}=1 to skip)", pytrace=False)
