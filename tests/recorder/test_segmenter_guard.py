"""A camera's supervision outlives any error: FAILED, a retry, and Restart and finish still work.

Real ffmpeg, a real SQLite catalog and real MPEG-TS; the fault is a hand-written catalog whose
``start_run`` raises until told to stop, as a catalog out of descriptors would.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
from pathlib import Path

import pytest
from sqlalchemy import select

from nvrlib.catalog import db
from nvrlib.catalog.models import Run, Segment
from recorder.store.catalog import Catalog, RunInfo
from recorder.store.storage import Storage
from recorder.supervise.segmenter import Segmenter
from recorder.supervise.states import RestartPolicy, State
from tests.support.media import encoded_ts
from tests.support import aio

POLICY = RestartPolicy(initial=0.2, maximum=0.5, fail_after=3, startsecs=0.2, failed_retry=60)


class FaultyCatalog(Catalog):
    """A catalog whose start_run fails while ``failing`` is set (a fault hook, not a mock)."""

    failing = True

    def start_run(self, info: RunInfo, kind: str, peer: str) -> None:
        if self.failing:
            raise OSError(errno.EMFILE, "Too many open files")
        super().start_run(info, kind, peer)


@pytest.fixture(scope="module")
def stream() -> bytes:
    return encoded_ts(6, rate=25)


@pytest.fixture
def catalog(tmp_path: Path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'nvr.db'}")
    db.upgrade(engine)
    yield FaultyCatalog(engine, Storage(tmp_path / "rec"))
    engine.dispose()


def segmenter(catalog: Catalog, executor: concurrent.futures.Executor) -> Segmenter:
    return Segmenter(camera="porch", location="", kind="push",
                     incoming_dir=catalog.storage.incoming_dir("porch"), segment_seconds=2,
                     policy=POLICY, catalog=catalog, catalog_executor=executor)


async def until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


def count(catalog: Catalog, model) -> int:  # type: ignore[no-untyped-def]
    with catalog.session() as session:
        return len(session.scalars(select(model.id)).all())


def test_an_error_makes_the_camera_failed_and_restart_brings_it_back(catalog, stream):
    async def scenario() -> None:
        with concurrent.futures.ThreadPoolExecutor(1) as executor:
            seg = segmenter(catalog, executor)
            states: list[State] = []
            seg.machine.listeners.append(lambda old, new, reason: states.append(new))
            seg.start()
            await seg.feed(stream[:188 * 100])
            await until(lambda: seg.state is State.FAILED)
            assert "hub error: OSError" in "\n".join(seg.stderr.tail())
            assert seg.machine.retry_in == 0.2  # the first failure: the back-off, then retries
            await until(lambda: seg.machine.consecutive_failures >= 3)
            assert seg.state is State.FAILED and seg.machine.retry_in == 60  # now it waits
            catalog.failing = False
            await seg.restart()  # cuts the 60-s wait short
            await until(lambda: seg.state in (State.STARTING, State.RUNNING))
            await seg.feed(stream[188 * 100:])
            await seg.finish()
            assert seg.state is State.STOPPED
            assert states.count(State.FAILED) == 1  # one alert's worth, not one per retry

    aio.run(scenario())
    assert count(catalog, Segment) >= 2  # the bytes buffered while FAILED were recorded too
    assert count(catalog, Run) == 1


def test_a_failed_camera_whose_edge_leaves_finishes_without_an_error(catalog, stream):
    async def scenario() -> None:
        with concurrent.futures.ThreadPoolExecutor(1) as executor:
            seg = segmenter(catalog, executor)
            seg.start()
            await seg.feed(stream[:188 * 100])
            await until(lambda: seg.state is State.FAILED)
            async with asyncio.timeout(5):
                await seg.finish()  # must neither raise nor hang: the connection is released
            assert seg.state is State.STOPPED

    aio.run(scenario())
    assert count(catalog, Segment) == 0
