"""Bounded waits that never lose a cancellation.

Python 3.11's ``asyncio.wait_for`` swallows a cancellation that arrives in the same turn of
the event loop as the awaited thing completes: the cancelled task goes on as if nothing had
happened, and a hub that is stopping waits for ever for it (systemd then kills it, and the open
segments are left for recovery). ``asyncio.timeout`` does not have the flaw; every bounded wait
of the hub goes through ``within``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable


async def within(awaitable: Awaitable[object], timeout: float | None) -> bool:
    """Await ``awaitable`` for at most ``timeout`` seconds (None: no limit); tell if it finished."""
    try:
        async with asyncio.timeout(timeout):
            await awaitable
    except TimeoutError:
        return False
    return True
