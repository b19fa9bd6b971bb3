"""Helpers for market-feed tests: build ticks, collect emitted ticks, wait (bounded) for a condition."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from tests.support.timing import t
from tickmesh.services.market_feed.normalise import Tick

T0 = 1_772_460_000_000_000  # a provider time (µs) in 2026


def tick(
    symbol: str = "AAPL",
    last: str = "187.20",
    ts: int = T0,
    *,
    ingest_ts: int | None = None,
    provider: str = "test",
    **kw,
) -> Tick:
    """A normalised tick (``ingest_ts`` defaults to ``ts``; ``kw``: bid, ask, size, ...)."""
    return Tick(
        symbol=symbol, last=last, ts=ts, ingest_ts=ts if ingest_ts is None else ingest_ts, provider=provider, **kw
    )


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
