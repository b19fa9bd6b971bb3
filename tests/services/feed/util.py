"""Helpers for adapter tests: collect emitted ticks, wait (bounded) for a condition."""

from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator, Callable

from tickmesh.services.market_feed.normalise import Tick
from tests.support.timing import t


class Collector:
    def __init__(self) -> None:
        self.ticks: list[Tick] = []

    async def emit(self, tick: Tick) -> None:
        self.ticks.append(tick)


async def until(cond: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Wait until ``cond()`` holds, failing after ``timeout`` (scaled) seconds. Not a timing
    assertion: the bound only keeps a broken test from hanging."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + t(timeout)
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running(provider, collector: Collector) -> AsyncIterator[asyncio.Task]:
    """Run ``provider`` in a task for the duration of the block, then cancel it."""
    task = asyncio.create_task(provider.run(collector.emit))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
