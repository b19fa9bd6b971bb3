"""``tickmesh service portfolio-valuer``: live portfolio valuations on each user's ``portfolio``.

Holdings come from the ``HOLDINGS_BUCKET`` KV bucket (watched: the broker writes it, see
``holdings``), prices from the ticks (``prices``); :class:`valuation.Valuer` applies each tick
to the holders of its symbol only, and :class:`throttle.Throttle` lets at most ``VALUER_MAX_HZ``
publishes per second per user through, the last change always included. A portfolio is published
only when it differs from the one published before (its time aside).

Tracing: a tick that carries a trace (see ``common.prices``) is followed into at most
:data:`TRACED_USERS_PER_TICK` of the portfolios it changes: each of those is published inside a
``valuer.publish`` span of the tick's trace, and carries it on to the edge. Enough to see how
long valuation takes, without a span per holder of a popular symbol.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
from typing import Any

from tickmesh import streams, tracing
from tickmesh.contracts.channels import Channel, Kind
from tickmesh.contracts.instruments import instruments
from tickmesh.publish import Publisher, current_trace, now_us, traced
from tickmesh.services.common.holdings import Account, watch_accounts
from tickmesh.services.common.prices import PriceBook, follow_prices
from tickmesh.services.runner import run_service, wait_wake_or_stop

from .settings import ValuerSettings
from .throttle import Throttle
from .valuation import Valuer

log = logging.getLogger(__name__)

TRACED_USERS_PER_TICK = 8


def shard_of(user: str, shards: int) -> int:
    """The shard (0 .. shards-1) that values ``user``: stable across processes and restarts."""
    if shards == 1:
        return 0
    return int.from_bytes(hashlib.blake2b(user.encode(), digest_size=8).digest(), "big") % shards


class PortfolioPublisher:
    """Publishes due portfolios, skipping any equal to the last one sent (``ts`` aside)."""

    def __init__(self, publisher: Publisher, valuer: Valuer, throttle: Throttle) -> None:
        self.publisher = publisher
        self.valuer = valuer
        self.throttle = throttle
        self._last: dict[str, dict[str, Any]] = {}
        self.wake = asyncio.Event()
        self.published = 0
        self._traces: dict[str, dict[str, str]] = {}  # user -> trace headers of the tick that changed it

    def changed(self, users: Any, trace: Any = tracing.UNSAMPLED) -> None:
        """``users``' valuations changed; ``trace`` (sampled) is the trace of the change."""
        self.throttle.mark_many(users, asyncio.get_running_loop().time())
        if trace.sampled:
            headers = trace.inject({})
            for user in itertools.islice(users, TRACED_USERS_PER_TICK):
                self._traces[user] = headers
        self.wake.set()

    def forget(self, user: str) -> None:
        self.throttle.forget(user)
        self._traces.pop(user, None)

    async def publish_due(self) -> None:
        for user in self.throttle.pop_due(asyncio.get_running_loop().time()):
            trace_headers = self._traces.pop(user, None) if self._traces else None
            if trace_headers is None:
                await self._publish(user)
            else:
                with traced(tracing.receive("valuer.publish", trace_headers, kind=tracing.PRODUCER, link=False)):
                    await self._publish(user)

    async def _publish(self, user: str) -> None:
        ts = now_us()
        msg = self.valuer.portfolio(user, ts)
        if msg is None:
            self._last.pop(user, None)
            return
        body = {k: v for k, v in msg.items() if k != "ts"}
        if self._last.get(user) == body:
            return
        await self.publisher.publish(Channel(Kind.PORTFOLIO, user), msg)
        self._last[user] = body
        self.published += 1

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            self.wake.clear()
            await self.publish_due()
            due = self.throttle.next_due()
            timeout = None if due is None else max(due - loop.time(), 0.0)
            await wait_wake_or_stop(self.wake, stop, timeout)


async def serve(settings: ValuerSettings, nc, stop: asyncio.Event) -> None:
    js = nc.jetstream()
    await streams.ensure(js)
    valuer = Valuer(reference_prices={s: i.reference_price for s, i in instruments().items()}, start_ts=now_us())
    publisher = PortfolioPublisher(Publisher(nc), valuer, Throttle(max_hz=settings.max_hz))
    home = settings.home_shard

    def on_account(user: str, account: Account | None) -> None:
        if shard_of(user, settings.shards) != home:
            return
        if account is None:
            valuer.remove_account(user)
            publisher.forget(user)
            return
        valuer.set_account(user, account)
        publisher.changed((user,))

    def on_price(symbol: str, price, ts: int) -> None:
        users = valuer.on_price(symbol, price, ts)
        if users:
            publisher.changed(users, current_trace())

    kv = await js.key_value(streams.HOLDINGS_BUCKET)
    ready = asyncio.Event()
    holdings_task = asyncio.ensure_future(watch_accounts(kv, on_account, ready))
    ticks = await follow_prices(nc, js, PriceBook(), on_price)
    await asyncio.wait([asyncio.ensure_future(ready.wait()), holdings_task], return_when=asyncio.FIRST_COMPLETED)
    log.info("portfolio-valuer running: %d accounts", len(list(valuer.users())), extra={"event": "valuer.started"})
    runner = asyncio.ensure_future(publisher.run(stop))
    try:
        await asyncio.wait([runner, holdings_task], return_when=asyncio.FIRST_COMPLETED)
        if holdings_task.done():  # the watch failed: crash, so the supervisor restarts us
            holdings_task.result()
        await runner
    finally:
        runner.cancel()
        holdings_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await holdings_task
        with contextlib.suppress(Exception):
            await ticks.unsubscribe()
        log.info("portfolio-valuer published %d portfolios", publisher.published, extra={"event": "valuer.stopped"})


SETTINGS = ValuerSettings


def main() -> None:
    run_service("portfolio-valuer", ValuerSettings, serve)
