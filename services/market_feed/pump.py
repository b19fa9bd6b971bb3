"""Moves ticks from a provider through the pipeline to the publisher, and keeps the pipeline's
clock running.

Two loops share one :class:`~.pipeline.Pipeline`: the provider's ``emit`` offers each tick as it
arrives, and :meth:`Pump.run_timer` calls ``poll`` at the pipeline's next deadline (woken early
when a new tick creates an earlier one), which is what sends held-back trailing ticks and stale
marks. Both run on one event loop, so the synchronous pipeline needs no lock.

Ticks go out through :class:`tickmesh.publish.Publisher` (``publish_tick``: validated, versioned,
traced). A tick NATS cannot take (its outbound buffer is full during an outage) is dropped and
counted (``tickmesh_dropped_messages_total{reason="overflow"}``), never raised into the provider:
prices are state, and the next tick supersedes the lost one. A tick that breaks the contract (a
provider bug) is dropped, counted (``reason="invalid"``) and logged: it never reaches browsers.

Tracing: :meth:`Pump.emit` is the head where a tick enters tickmesh. One random draw
(``tracing.should_sample``) decides; an unsampled tick takes the plain path, which creates no
span and no header. A sampled tick is one trace: ``feed.tick`` (root, CONSUMER) with the steps
``feed.normalise`` (pipeline: order, duplicates, rate; contract-shaped message) and, for each
tick published, ``feed.publish`` (PRODUCER), whose context the NATS headers carry onwards (the
edge and the portfolio-valuer continue it). Ticks published later by the timer (trailing ticks
of a burst, stale marks) are not traced: the sampled tick's trace ends when it is held back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from nats.errors import Error as NatsError

from tickmesh import metrics, tracing
from tickmesh.publish import InvalidMessage, Publisher, PublishError

from .normalise import Tick
from .pipeline import Pipeline

log = logging.getLogger(__name__)

# Longest sleep of the timer loop when nothing is due: bounds the cost of a missed wake-up.
IDLE_POLL_S = 1.0


class Pump:
    def __init__(self, pipeline: Pipeline, publisher: Publisher, clock: Callable[[], float] = time.monotonic) -> None:
        self.pipeline = pipeline
        self.publisher = publisher
        self.clock = clock
        self._wake = asyncio.Event()
        self.dropped = 0
        self.rejected = 0
        self._failing = False

    async def emit(self, tick: Tick) -> None:
        """The provider's ``emit``: publish what the pipeline lets through now."""
        if tracing.should_sample():
            await self._emit_traced(tick)
            return
        before = self.pipeline.next_deadline()
        await self._publish(self.pipeline.offer(tick, now=self.clock()))
        after = self.pipeline.next_deadline()
        if after is not None and (before is None or after < before):
            self._wake.set()

    async def _emit_traced(self, tick: Tick) -> None:
        """:meth:`emit` for a tick the head-sampling draw chose (see the module docstring)."""
        attributes = {"tickmesh.provider": tick.provider, "tickmesh.ingest_ts": tick.ingest_ts}
        with tracing.begin("feed.tick", force=True, attributes=attributes) as tr:
            before = self.pipeline.next_deadline()
            with tr.step("feed.normalise"):
                out = self.pipeline.offer(tick, now=self.clock())
            tr.set("tickmesh.published", len(out))
            await self._publish(out, tr)
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

    async def _publish(self, ticks: list[Tick], tr=tracing.UNSAMPLED) -> None:
        for tick in ticks:
            try:
                if tr.sampled:
                    attributes = {
                        "messaging.system": "nats",
                        "messaging.destination.name": self.publisher.tick_subject(tick.symbol),
                    }
                    with tr.step("feed.publish", kind=tracing.PRODUCER, attributes=attributes):
                        await self.publisher.publish_tick(tick.to_message(), tr)
                else:
                    await self.publisher.publish_tick(tick.to_message())
            except InvalidMessage as exc:
                self.rejected += 1
                metrics.dropped("invalid")
                log.warning("dropped a tick that breaks the contract: %s", exc, extra={"event": "feed.invalid_tick"})
                continue
            except (PublishError, NatsError) as exc:
                self.dropped += 1
                metrics.dropped("overflow")
                if not self._failing:
                    self._failing = True
                    log.warning(
                        "NATS refused ticks (%s); dropping until it recovers",
                        exc,
                        extra={"event": "feed.publish_failing"},
                    )
                continue
            if self._failing:
                self._failing = False
                log.info(
                    "publishing again after dropping %d ticks",
                    self.dropped,
                    extra={"event": "feed.publish_recovered", "dropped": self.dropped},
                )
