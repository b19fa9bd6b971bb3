"""``tickmesh service portfolio-valuer``: live portfolio valuations on each user's ``portfolio``.

Holdings come from the ``HOLDINGS_BUCKET`` KV bucket (watched: the broker writes it, see
``holdings``), prices from the ticks (``prices``); :class:`valuation.Valuer` applies each tick
to the holders of its symbol only, and :class:`throttle.Throttle` lets at most ``VALUER_MAX_HZ``
publishes per second per user through, the last change always included. A portfolio is published
only when it differs from the one published before (its time aside).

Sharding: each instance values the users of the shards it holds (``shards``: a stable hash of
the user id; leases in NATS KV, ``leases``). Every instance keeps every stored account as bytes,
so a shard taken over from a lost instance is valued at once; failover takes at most
``VALUER_LEASE_TTL_S`` plus about a second after a crash, and nothing after a clean stop.

Causal position: each valuation names (``trade_seq``) the highest ``trades`` position among the
fills its holdings include; an account change that applied a fill is held until that fill's
execution has been seen on the trades stream (``fills``), at most ``VALUER_FILL_WAIT_S``.

Tracing: a tick that carries a trace (see ``common.prices``) is followed into at most
:data:`TRACED_USERS_PER_TICK` of the portfolios it changes: each of those is published inside a
``valuer.publish`` span of the tick's trace, and carries it on to the edge. Enough to see how
long valuation takes, without a span per holder of a popular symbol.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from typing import Any

import orjson
from nats.js.api import DeliverPolicy

from tickmesh import streams, tracing
from tickmesh.contracts.channels import Channel, Kind, wildcard
from tickmesh.contracts.instruments import instruments
from tickmesh.publish import Publisher, current_trace, now_us, traced
from tickmesh.services.common.buckets import follow
from tickmesh.services.common.holdings import decode_account, user_of_key
from tickmesh.services.common.prices import PriceBook, follow_prices
from tickmesh.services.runner import run_service, wait_wake_or_stop

from .fills import FillPositions
from .leases import ShardLeases
from .settings import ValuerSettings
from .shards import shard_of
from .throttle import Throttle
from .valuation import Valuer

log = logging.getLogger(__name__)

TRACED_USERS_PER_TICK = 8


class PortfolioPublisher:
    """Publishes due portfolios, skipping any equal to the last one sent (``ts`` aside)."""

    def __init__(
        self, publisher: Publisher, valuer: Valuer, throttle: Throttle, trade_seq: dict[str, int] | None = None
    ) -> None:
        self.publisher = publisher
        self.valuer = valuer
        self.throttle = throttle
        self.trade_seq = trade_seq if trade_seq is not None else {}  # user -> causal position (fills.py)
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
        seq = self.trade_seq.get(user)
        if seq:
            msg["trade_seq"] = seq
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


class Accounts:
    """Every user's stored account as the bucket holds it (bytes, decoded only for the shards this
    instance values), so that a shard taken over from a lost instance is valued at once, without
    reading the bucket again."""

    def __init__(
        self, shards: int, valuer: Valuer, publisher: PortfolioPublisher, fills: FillPositions | None = None
    ) -> None:
        self.shards = shards
        self.valuer = valuer
        self.publisher = publisher
        self.fills = fills if fills is not None else FillPositions(wait_s=1.0)
        publisher.trade_seq = self.fills.trade_seq
        self._timer: asyncio.TimerHandle | None = None
        self.raw: list[dict[str, bytes]] = [{} for _ in range(shards)]  # by shard: user -> account
        self.valued: set[int] = set()

    def on_entry(self, user: str, value: bytes | None, initial: bool = False) -> None:
        shard = shard_of(user, self.shards)
        if value is None:
            self.raw[shard].pop(user, None)
        else:
            self.raw[shard][user] = value
        if shard in self.valued:
            self._apply(user, value, history=initial)

    def _apply(self, user: str, value: bytes | None, *, history: bool = True) -> None:
        try:
            account = None if value is None else decode_account(value)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignored an unreadable account of %s: %s", user, exc, extra={"event": "holdings.bad_entry"})
            return
        if account is None:
            self.valuer.remove_account(user)
            self.publisher.forget(user)
            self.fills.forget(user)
        elif self.fills.account(user, account.applied, account, asyncio.get_running_loop().time(), history=history):
            self._value(user, account)
        else:
            self._arm()

    def _value(self, user: str, account: Any) -> None:
        self.valuer.set_account(user, account)
        self.publisher.changed((user,))

    def on_execution(self, msg: Any) -> None:
        """An execution on the trades stream: a fill completes a held account change."""
        try:
            data = orjson.loads(msg.data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(data, dict) or data.get("status") != "filled":
            return
        user, exec_id = data.get("user"), data.get("exec_id")
        if not isinstance(user, str) or not isinstance(exec_id, str) or shard_of(user, self.shards) not in self.valued:
            return
        account = self.fills.execution(user, exec_id, msg.metadata.sequence.stream)
        if account is not None:
            self._value(user, account)

    def _arm(self) -> None:
        deadline = self.fills.next_deadline()
        if self._timer is None and deadline is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_at(deadline, self._due)

    def _due(self) -> None:
        self._timer = None
        for user, account in self.fills.due(asyncio.get_running_loop().time()):
            log.warning(
                "a fill of %s was not seen on trades within the wait; its valuation goes out anyway",
                user,
                extra={"event": "valuer.fill_wait_timeout", "user": user},
            )
            self._value(user, account)
        self._arm()

    def take(self, shard: int) -> None:
        """Start valuing ``shard``: its users' portfolios go out at once."""
        self.valued.add(shard)
        for user, value in self.raw[shard].items():
            self._apply(user, value)

    def give_back(self, shard: int) -> None:
        self.valued.discard(shard)
        for user in self.raw[shard]:
            self.valuer.remove_account(user)
            self.publisher.forget(user)
            self.fills.forget(user)

    def users(self) -> int:
        return sum(len(self.raw[s]) for s in self.valued)


async def serve(settings: ValuerSettings, nc, stop: asyncio.Event) -> None:
    js = nc.jetstream()
    await streams.ensure(js)
    valuer = Valuer(reference_prices={s: i.reference_price for s, i in instruments().items()}, start_ts=now_us())
    publisher = PortfolioPublisher(Publisher(nc), valuer, Throttle(max_hz=settings.max_hz))
    accounts = Accounts(settings.shards, valuer, publisher, FillPositions(wait_s=settings.fill_wait))

    def on_price(symbol: str, price, ts: int) -> None:
        users = valuer.on_price(symbol, price, ts)
        if users:
            publisher.changed(users, current_trace())

    async def on_execution(msg) -> None:
        accounts.on_execution(msg)

    # Executions first: a fill whose holdings change is seen after this is matched (fills.py).
    executions = await js.subscribe(
        wildcard(Kind.TRADES),
        stream=streams.USER_EVENTS,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.NEW,
        idle_heartbeat=1.0,
        cb=on_execution,
    )
    kv = await js.key_value(streams.HOLDINGS_BUCKET)
    ready = asyncio.Event()
    holdings_task = asyncio.ensure_future(
        follow(
            kv,
            lambda key, value: (user_of_key(key), value),
            lambda item, initial: accounts.on_entry(*item, initial=initial),
            ready=ready,
            what="account",
            event="holdings.bad_entry",
        )
    )
    ticks = await follow_prices(nc, js, PriceBook(), on_price)
    await asyncio.wait([asyncio.ensure_future(ready.wait()), holdings_task], return_when=asyncio.FIRST_COMPLETED)
    leases = ShardLeases(
        js,
        shards=settings.shards,
        home=settings.home_shard,
        ttl=settings.lease_ttl,
        on_take=accounts.take,
        on_give_back=accounts.give_back,
    )
    await leases.start()
    log.info(
        "portfolio-valuer running: shards %s of %d, %d accounts",
        sorted(accounts.valued),
        settings.shards,
        accounts.users(),
        extra={"event": "valuer.started"},
    )
    runner = asyncio.ensure_future(publisher.run(stop))
    try:
        await asyncio.wait([runner, holdings_task], return_when=asyncio.FIRST_COMPLETED)
        if holdings_task.done():  # the watch failed: crash, so the supervisor restarts us
            holdings_task.result()
        await runner
    finally:
        runner.cancel()
        await leases.stop()  # the others take our shards over at once
        holdings_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await holdings_task
        with contextlib.suppress(Exception):
            await ticks.unsubscribe()
        with contextlib.suppress(Exception):
            await executions.unsubscribe()
        log.info("portfolio-valuer published %d portfolios", publisher.published, extra={"event": "valuer.stopped"})


SETTINGS = ValuerSettings


def main() -> None:
    run_service("portfolio-valuer", ValuerSettings, serve)
