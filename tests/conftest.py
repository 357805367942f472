"""Fixtures shared by every test package."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.procs import Hub


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
