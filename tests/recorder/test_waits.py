"""Bounded waits: done, timed out, and a cancellation that comes as the wait ends is kept."""

from __future__ import annotations

import asyncio

import pytest

from recorder.supervise.waits import within
from tests.support.aio import run


def test_within_tells_done_from_timed_out() -> None:
    async def scenario() -> tuple[bool, bool, bool]:
        done = asyncio.Event()
        done.set()
        never = asyncio.Event()
        return (await within(done.wait(), 5), await within(never.wait(), 0.01),
                await within(asyncio.sleep(0), None))

    assert run(scenario()) == (True, False, True)


def test_a_cancellation_that_comes_as_the_wait_ends_is_not_lost() -> None:
    # Python 3.11's asyncio.wait_for returned normally here: a stopping hub then waited for
    # ever for the segmenter or live tap that had lost its cancellation
    async def scenario() -> None:
        event = asyncio.Event()
        waiter = asyncio.create_task(within(event.wait(), 30))
        await asyncio.sleep(0)
        event.set()  # the wait is over, and in the same turn of the loop ...
        waiter.cancel()  # ... the hub's stop cancels the task
        with pytest.raises(asyncio.CancelledError):
            await waiter

    run(scenario())
