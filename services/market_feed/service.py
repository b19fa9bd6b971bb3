"""``tickmesh service market-feed``: runs the configured provider and publishes its ticks."""

from __future__ import annotations

import asyncio
import logging
import time

from tickmesh.services.runner import run_service

from .publisher import TickPublisher
from .settings import FeedSettings
from .synthetic import SyntheticMarket

log = logging.getLogger(__name__)


async def run_synthetic(market: SyntheticMarket, publisher: TickPublisher, stop: asyncio.Event) -> None:
    """Publish ticks at the market's Poisson rate until ``stop`` is set.

    Ticks whose arrival time has passed are published in a burst, so the long-run rate holds
    even when the event loop oversleeps.
    """
    next_at = time.time()
    while not stop.is_set():
        now = time.time()
        while next_at <= now:
            await publisher.publish(market.next_tick(now))
            next_at += market.interval()
        try:
            await asyncio.wait_for(stop.wait(), timeout=max(next_at - time.time(), 0))
        except asyncio.TimeoutError:
            pass


async def serve(settings: FeedSettings, nc, stop: asyncio.Event) -> None:
    publisher = TickPublisher(nc)
    market = SyntheticMarket(settings.universe(), rate=settings.rate,
                             volatility_scale=settings.volatility_scale, seed=settings.seed or None)
    log.info("market-feed running: provider=%s symbols=%d rate=%.0f/s", settings.provider,
             len(settings.universe()), settings.rate, extra={"event": "feed.started"})
    try:
        await run_synthetic(market, publisher, stop)
    finally:
        log.info("market-feed published %d ticks", publisher.published, extra={"event": "feed.stopped"})


SETTINGS = FeedSettings


def main() -> None:
    run_service("market-feed", FeedSettings, serve)
