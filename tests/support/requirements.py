"""Tests that need a system package (Chromium, GStreamer's RTSP server, PostgreSQL).

scripts/test.sh installs those packages, so a missing one is a broken set-up and fails the
test with the reason: a skipped test proves nothing. There is no switch to skip them; a
developer without the packages runs the rest with pytest's -k or --deselect.
"""

from __future__ import annotations

import pytest


def require(missing: str | None, module_level: bool = False,
            remedy: str = "install it with scripts/install-test-deps.sh") -> None:
    """Fail when ``missing`` names what is not installed, saying how to get it (``remedy``).

    ``module_level`` is for a check at import time: the module then fails to collect, which
    stops the run with the reason (a broken set-up is reported before anything else runs).
    """
    del module_level  # pytest.fail works at import time too; the flag documents the call site
    if missing:
        pytest.fail(f"{missing} ({remedy})", pytrace=False)
