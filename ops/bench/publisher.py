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

_PAYLOAD = (
    b'{"symbol":"%s","last":"187.20","bid":"187.19","ask":"187.21","size":"100","provider":"bench","i":%d,"bt":%d}'
)


@dataclass
class Flow:
    """``rate`` messages per second on ``subject`` (for the channel of ``symbol``), the first one
    ``phase`` seconds into the window (flows of independent channels are spread over the interval
    rather than all published in the same instant)."""

    subject: str
    symbol: str
    rate: float
    phase: float = 0.0


async def connect(url: str):
    return await nats.connect(
        servers=[url], name="tickmesh-bench", max_reconnect_attempts=-1, reconnect_time_wait=0.2, connect_timeout=5
    )


async def drive(nc, flows: list[Flow], seconds: float, progress=None) -> dict[str, int]:
    """Publish every flow at its rate for ``seconds``; returns messages published per subject.

    ``progress(elapsed)`` is called about twice a second, if given.
    """
    start = time.monotonic()
    end = start + seconds
    due = [start + f.phase for f in flows]
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


_NEWS = b'{"id":"bench-%d","headline":"Bench story %d","source":"bench","ts":%d,"bt":%d}'


class EventFlow:
    """News stories stored in JetStream (``js.publish`` on the channel's subject) at a steady
    rate until :meth:`stop`; each carries ``"bt"`` like a tick. Keeps the stream position of the
    last acknowledged story (:attr:`last_seq`) and how many were stored since :meth:`mark`."""

    def __init__(self, js, subject: str, rate: float) -> None:
        self.js, self.subject, self.rate = js, subject, rate
        self.sent = 0
        self.last_seq = 0
        self.failed = 0
        self._marked = 0
        self._stopping = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    def mark(self) -> None:
        self._marked = self.sent

    @property
    def since_mark(self) -> int:
        return self.sent - self._marked

    async def _run(self) -> None:
        interval = 1.0 / self.rate
        due = time.monotonic()
        while not self._stopping.is_set():
            now_us = time.time_ns() // 1000
            try:
                ack = await self.js.publish(
                    self.subject, _NEWS % (self.sent + 1, self.sent + 1, now_us, now_us), timeout=5
                )
            except Exception:  # noqa: BLE001 - counted; a story that was not stored is not expected anywhere
                self.failed += 1
            else:
                self.sent += 1
                self.last_seq = max(self.last_seq, ack.seq)
            due += interval
            try:
                await asyncio.wait_for(self._stopping.wait(), max(0.0, due - time.monotonic()))
            except TimeoutError:
                pass

    async def stop(self) -> int:
        """Stop publishing (a story in flight is still acknowledged, so nothing stored goes
        uncounted); returns the last stored position: every client must reach it."""
        self._stopping.set()
        if self._task is not None:
            await self._task
        return self.last_seq
