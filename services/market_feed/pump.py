"""Moves ticks from a provider through the pipeline to the publisher, and keeps the pipeline's
clock running.

Two loops share one :class:`~.pipeline.Pipeline`: the provider's ``emit`` offers each tick as it
arrives, and :meth:`Pump.run_timer` calls ``poll`` at the pipeline's next deadline (woken early
when a new tick creates an earlier one), which is what sends held-back trailing ticks and stale
marks. Both run on one event loop, so the synchronous pipeline needs no lock.

A tick NATS cannot take (its outbound buffer is full during an outage) is dropped and counted,
never raised into the provider: prices are state, and the next tick supersedes the lost one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from nats.errors import Error as NatsError

from .normalise import Tick
from .pipeline import Pipeline
from .publisher import TickPublisher

log = logging.getLogger(__name__)

# Longest sleep of the timer loop when nothing is due: bounds the cost of a missed wake-up.
IDLE_POLL_S = 1.0


class Pump:
    def __init__(self, pipeline: Pipeline, publisher: TickPublisher,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.pipeline = pipeline
        self.publisher = publisher
        self.clock = clock
        self._wake = asyncio.Event()
        self.dropped = 0
        self._failing = False

    async def emit(self, tick: Tick) -> None:
        """The provider's ``emit``: publish what the pipeline lets through now."""
        before = self.pipeline.next_deadline()
        await self._publish(self.pipeline.offer(tick, now=self.clock()))
        after = self.pipeline.next_deadline()
        if after is not None and (before is None or after < before):
            self._wake.set()

    async def run_timer(self) -> None:
        """Poll the pipeline at each deadline, forever (until cancelled)."""
        while True:
            deadline = self.pipeline.next_deadline()
            timeout = IDLE_POLL_S if deadline is None else min(max(deadline - self.clock(), 0.0), IDLE_POLL_S)
            self._wake.clear()
            if timeout > 0:
                try:
                    async with asyncio.timeout(timeout):  # not wait_for: it can swallow a cancel on 3.11
                        await self._wake.wait()
                except TimeoutError:
                    pass
            await self._publish(self.pipeline.poll(now=self.clock()))

    async def _publish(self, ticks: list[Tick]) -> None:
        for tick in ticks:
            try:
                await self.publisher.publish(tick.to_message())
            except NatsError as exc:
                self.dropped += 1
                if not self._failing:
                    self._failing = True
                    log.warning("NATS refused ticks (%s); dropping until it recovers", exc,
                                extra={"event": "feed.publish_failing"})
                continue
            if self._failing:
                self._failing = False
                log.info("publishing again after dropping %d ticks", self.dropped,
                         extra={"event": "feed.publish_recovered", "dropped": self.dropped})
