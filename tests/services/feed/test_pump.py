"""The pump between provider, pipeline and NATS, with a real nats-server."""

from __future__ import annotations

import asyncio
import contextlib

import nats

from tickmesh.contracts import messages
from tickmesh.contracts.channels import tick_subject
from tickmesh.publish import Publisher
from tickmesh.services.market_feed.pipeline import Pipeline
from tickmesh.services.market_feed.pump import Pump

from .util import T0, tick, until


async def test_a_rate_limited_burst_still_publishes_its_last_value_then_goes_stale(nats_server):
    nc = await nats.connect(nats_server.url)
    got: list[dict] = []

    async def collect(msg):
        got.append(messages.decode("tick", msg.data))

    await nc.subscribe(tick_subject("SOL-USDT"), cb=collect)
    pump = Pump(Pipeline(max_hz=5.0, stale_after=0.5), Publisher(nc))
    timer = asyncio.create_task(pump.run_timer())
    try:
        for n, last in enumerate(("148.30", "148.31", "148.32", "148.33"), 1):
            await pump.emit(tick("SOL-USDT", last, T0 + n))
        await until(lambda: any(x.get("stale") for x in got), what="the trailing tick and the stale mark")
    finally:
        timer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await timer
        await nc.close()
    assert [(x["last"], x.get("stale", False)) for x in got] == [("148.30", False), ("148.33", False), ("148.33", True)]
