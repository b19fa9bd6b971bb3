"""``tickmesh service broker``: the paper broker (``order.submit``, ``order.cancel``).

Market orders fill at the last tick's price (605 until a symbol has one); limit orders rest and
fill when a tick crosses their price. See ``engine`` for what is guaranteed under retries,
concurrent instances and crashes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from tickmesh import streams
from tickmesh.publish import Publisher
from tickmesh.services.common.buckets import follow
from tickmesh.services.common.prices import PriceBook, follow_prices
from tickmesh.services.runner import run_service, serve_commands

from .engine import Broker
from .orders import decode_order
from .settings import BrokerSettings

log = logging.getLogger(__name__)


async def follow_orders(kv: Any, broker: Broker, ready: asyncio.Event) -> None:
    """Feed every stored order, then every change, to ``broker.on_stored``."""

    def decode(key: str, value: bytes | None):
        return decode_order(value) if value else None  # deleted or empty: nothing to apply

    def apply(order, initial: bool) -> None:
        if order is not None:
            broker.on_stored(order, initial=initial)

    await follow(kv, decode, apply, ready=ready, what="order", event="broker.bad_order")


async def serve(settings: BrokerSettings, nc, stop: asyncio.Event) -> None:
    js = nc.jetstream()
    await streams.ensure(js)
    prices = PriceBook()
    broker = Broker(
        publisher=Publisher(nc),
        orders_kv=await js.key_value(streams.ORDERS_BUCKET),
        holdings_kv=await js.key_value(streams.HOLDINGS_BUCKET),
        prices=prices,
    )
    ready = asyncio.Event()
    orders_task = asyncio.ensure_future(follow_orders(broker.orders_kv, broker, ready))
    ticks = await follow_prices(nc, js, prices, broker.on_price)
    await asyncio.wait([asyncio.ensure_future(ready.wait()), orders_task], return_when=asyncio.FIRST_COMPLETED)
    subs = await serve_commands(nc, "broker", {"order.submit": broker.submit, "order.cancel": broker.cancel})
    log.info("broker running: %d resting orders", len(broker.book), extra={"event": "broker.started"})
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([stopper, orders_task], return_when=asyncio.FIRST_COMPLETED)
        if orders_task.done():
            orders_task.result()
    finally:
        stopper.cancel()
        for sub in subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        with contextlib.suppress(Exception):
            await ticks.unsubscribe()
        await broker.drain()
        orders_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await orders_task
        log.info("broker stopped", extra={"event": "broker.stopped"})


SETTINGS = BrokerSettings


def main() -> None:
    run_service("broker", BrokerSettings, serve)
