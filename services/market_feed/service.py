"""``tickmesh service market-feed``: runs the configured provider through the pipeline to NATS.

At start-up the JetStream streams are ensured (``TM_TICKS`` keeps the last tick per symbol as
the snapshot new subscribers get). SIGTERM stops the provider and the timer, then the runner
drains NATS, so every tick accepted before the signal is flushed.

Observability (besides what ``services/runner.py`` gives every service): provider health
(``tickmesh_provider_*``: connected, last message age, gaps, reconnects) from the adapters,
drops by reason from the pipeline (``on_drop``) and the pump, publish counts and
provider-to-NATS latency from the publisher (``tickmesh.publish``), and a trace per sampled tick from the pump's head.
"""

from __future__ import annotations

import asyncio
import logging

from tickmesh import metrics, streams
from tickmesh.publish import Publisher
from tickmesh.services.runner import run_service

from . import provider as providers
from .pipeline import Pipeline
from .pump import Pump
from .settings import FeedSettings

log = logging.getLogger(__name__)


async def serve(settings: FeedSettings, nc, stop: asyncio.Event) -> None:
    await streams.ensure(nc.jetstream())
    symbols = settings.universe()
    publisher = Publisher(nc)
    pipeline = Pipeline(
        symbols=symbols, stale_after=settings.stale_after, max_hz=settings.max_hz_per_symbol, on_drop=metrics.dropped
    )
    pump = Pump(pipeline, publisher)
    source = providers.build(settings, symbols)
    log.info(
        "market-feed running: provider=%s symbols=%d",
        source.name,
        len(symbols),
        extra={"event": "feed.started", "provider": source.name, "symbols": len(symbols)},
    )
    feed = asyncio.create_task(_run_provider(source, pump), name="feed-provider")
    timer = asyncio.create_task(pump.run_timer(), name="feed-timer")
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({feed, timer, stopping}, return_when=asyncio.FIRST_COMPLETED)
        for task in (feed, timer):
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # a bug, not a provider outage: let the supervisor restart us
        if not stop.is_set():
            await stop.wait()  # the timer keeps running (stale marks) after a finite provider ends
    finally:
        for task in (feed, timer, stopping):
            task.cancel()
        await asyncio.gather(feed, timer, stopping, return_exceptions=True)
        log.info(
            "market-feed published %d ticks",
            publisher.published,
            extra={
                "event": "feed.stopped",
                "published": publisher.published,
                "provider_stats": source.stats.as_dict(),
                "pipeline_stats": vars(pipeline.stats),
            },
        )


async def _run_provider(source: providers.Provider, pump: Pump) -> None:
    await source.run(pump.emit)
    log.info("%s provider finished", source.name, extra={"event": "feed.provider_done", "provider": source.name})


SETTINGS = FeedSettings


def main() -> None:
    run_service("market-feed", FeedSettings, serve)
