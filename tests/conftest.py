"""Fixtures shared by every test package."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from nvrlib import ffmpeg_bin
from tests.support.ffmpegs import BUILDS, build
from tests.support.procs import Hub
from tests.support.schedule import load_weights, longest_files_first


def pytest_configure(config: pytest.Config) -> None:
    """Point this pytest process's XDG state folder at a temp folder of its own.

    Edges spool under $XDG_STATE_HOME by default; session-scoped systems start before any
    function fixture can patch the environment, and must never touch the user's real spool.
    """
    os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="nvr-test-state-")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove this process's temp state folder."""
    shutil.rmtree(os.environ.get("XDG_STATE_HOME", ""), ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the longest test files first, so no worker is left alone with a long one at the end
    (tests/support/schedule.py; scripts/test.sh turns xdist's own reordering off)."""
    items[:] = longest_files_first(items, load_weights())


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run each test marked ``both_ffmpegs`` once per ffmpeg build (the wheel's, Debian's 5.1)."""
    if metafunc.definition.get_closest_marker("both_ffmpegs"):
        metafunc.parametrize("ffmpeg_under_test", BUILDS, indirect=True)


@pytest.fixture(autouse=True)
def ffmpeg_under_test(request: pytest.FixtureRequest,
                      monkeypatch: pytest.MonkeyPatch) -> Iterator[str | None]:
    """In a ``both_ffmpegs`` test: the build it runs with, as $NVR_FFMPEG for this process and
    every hub it starts (module-scoped fixtures were set up before, with the default)."""
    name = getattr(request, "param", None)
    if name is None:
        yield None
        return
    monkeypatch.setenv(ffmpeg_bin.ENVIRONMENT, build(name))
    ffmpeg_bin.configure(None)  # forget the cached choice: the variable changed
    yield name
    monkeypatch.delenv(ffmpeg_bin.ENVIRONMENT, raising=False)
    ffmpeg_bin.configure(None)


@pytest.fixture(autouse=True)
def own_state_directory(tmp_path_factory: pytest.TempPathFactory,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Give each test its own XDG state folder, so edges it starts keep their spools apart.

    An edge spools under $XDG_STATE_HOME by default and uploads what it finds there: two tests
    sharing that folder would back-fill one test's footage into another test's hub.
    """
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))


@pytest.fixture
def hub_factory(tmp_path: Path) -> Iterator:
    """Make real hubs on 127.0.0.1 (each in its own folder); all are stopped at the end."""
    hubs: list[Hub] = []

    def make(config: str = "", segment_seconds: float = 2.0, name: str = "hub",
             env: dict[str, str] | None = None) -> Hub:
        workdir = tmp_path / name
        workdir.mkdir(exist_ok=True)
        hub = Hub(workdir, config=config, segment_seconds=segment_seconds, env=env)
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        for run in hub.runs:
            if run.proc.poll() is None:
                run.terminate(timeout=30)
            run.kill_group()
