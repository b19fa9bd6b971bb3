"""Offered load: messages published on NATS at a set rate, each carrying its send time.

Each payload looks like a tick (about 150 bytes) and carries ``"bt"``, the send time in
microseconds since the epoch, taken just before the publish call, so a client's receive time
minus ``bt`` is the publish -> client latency. Due messages are published in bursts, so the long-
run rate holds when the loop oversleeps; the counts actually published per subject are returned,
so "expected deliveries" never assumes the rate was met.

:class:`Tap` subscribes to subjects and counts what others publish (end-to-end scenario, where
market-feed, not the bench, is the publisher).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import nats

_PAYLOAD = (b'{"symbol":"%s","last":"187.20","bid":"187.19","ask":"187.21","size":"100",'
            b'"provider":"bench","i":%d,"bt":%d}')


@dataclass
class Flow:
    """``rate`` messages per second on ``subject`` (for the channel of ``symbol``)."""

    subject: str
    symbol: str
    rate: float


async def connect(url: str):
    return await nats.connect(servers=[url], name="tickmesh-bench", max_reconnect_attempts=-1,
                              reconnect_time_wait=0.2, connect_timeout=5)


async def drive(nc, flows: list[Flow], seconds: float, progress=None) -> dict[str, int]:
    """Publish every flow at its rate for ``seconds``; returns messages published per subject.

    ``progress(elapsed)`` is called about twice a second, if given.
    """
    start = time.monotonic()
    end = start + seconds
    due = [start] * len(flows)
    sent = [0] * len(flows)
    intervals = [1.0 / f.rate for f in flows]
    symbols = [f.symbol.encode() for f in flows]
    next_progress = start + 0.5
    while True:
        now = time.monotonic()
        if now >= end:
            break
        for k, flow in enumerate(flows):
            while due[k] <= now:
                sent[k] += 1
                await nc.publish(flow.subject, _PAYLOAD % (symbols[k], sent[k], time.time_ns() // 1000))
                due[k] += intervals[k]
        if progress is not None and now >= next_progress:
            progress(now - start)
            next_progress = now + 0.5
        await asyncio.sleep(max(0.0, min(min(due), end) - time.monotonic()))
    await nc.flush(timeout=10)
    return {flow.subject: sent[k] for k, flow in enumerate(flows)}


class Tap:
    """Counts messages on ``subjects`` between :meth:`reset` and :meth:`counts`."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._subs: list = []

    async def start(self, nc, subjects: list[str]) -> None:
        async def on_msg(msg) -> None:
            self._counts[msg.subject] = self._counts.get(msg.subject, 0) + 1

        for subject in subjects:
            self._subs.append(await nc.subscribe(subject, cb=on_msg))
        await nc.flush()

    def reset(self) -> None:
        self._counts = {}

    def counts(self) -> dict[str, int]:
        return dict(self._counts)

    async def stop(self) -> None:
        for sub in self._subs:
            await sub.unsubscribe()
        self._subs.clear()
