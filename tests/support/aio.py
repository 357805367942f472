"""Run a coroutine to completion from a synchronous test, whatever loop the thread has."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` with asyncio.run in a fresh thread and return its result.

    A session-scoped Playwright (tests/browser) keeps an event loop marked as running in the
    main thread of the pytest worker that ran the browser tests; asyncio.run refuses to start
    there, so tests that drive coroutines run them in a thread of their own.
    """
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="test-asyncio") as pool:
        return pool.submit(asyncio.run, coro).result()
