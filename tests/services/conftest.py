"""Shared helpers for the domain-service tests: a NATS client, services run in-process against
the real nats-server of the ``nats_server`` fixture, commands sent as the edge sends them, and
ticks published as market-feed publishes them."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from decimal import Decimal
from typing import Any

import nats

from tests.support.timing import t
from tickmesh import streams
from tickmesh.config import load
from tickmesh.contracts import commands as cmds
from tickmesh.contracts import messages
from tickmesh.contracts.channels import tick_subject
from tickmesh.contracts.messages import SEQ_HEADER
from tickmesh.publish import now_us
from tickmesh.services.common.holdings import Account, Position
from tickmesh.services.portfolio_valuer.demo import seed_accounts

_ids = itertools.count(1)


class Running:
    """A service's ``serve`` running in this event loop until :meth:`stop`."""

    def __init__(self, task: asyncio.Task, stop: asyncio.Event, conn: Any) -> None:
        self.task, self.stop_event, self.conn = task, stop, conn

    async def stop(self) -> None:
        self.stop_event.set()
        await asyncio.wait_for(self.task, t(10))
        await self.conn.close()


async def start_service(module: Any, url: str, **env: str) -> Running:
    """Start ``module.serve`` with its settings from ``env`` on its own connection."""
    settings = load(module.SETTINGS, {"NATS_URL": url, **env})
    conn = await nats.connect(url)
    stop = asyncio.Event()
    task = asyncio.ensure_future(module.serve(settings, conn, stop))
    await asyncio.sleep(0)
    return Running(task, stop, conn)


@contextlib.asynccontextmanager
async def service(module: Any, url: str, **env: str):
    running = await start_service(module, url, **env)
    try:
        yield running
    finally:
        await running.stop()


async def command(
    nc: Any,
    name: str,
    user: str,
    data: dict[str, Any],
    *,
    roles=("user",),
    cmd_id: str | None = None,
    timeout: float = 5,
) -> cmds.CommandReply:
    """Send ``name`` as the edge does; retries while the service is not subscribed yet."""
    body = cmds.encode_request(name, user=user, roles=roles, cmd_id=cmd_id or f"c{next(_ids)}", data=data)
    deadline = asyncio.get_running_loop().time() + t(timeout)
    while True:
        try:
            msg = await nc.request(cmds.command_subject(name), body, timeout=t(timeout))
            return cmds.decode_reply(msg.data)
        except nats.errors.NoRespondersError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)


async def publish_tick(nc: Any, symbol: str, price: str | Decimal, *, ts: int | None = None) -> None:
    """A contract-valid tick as market-feed publishes it (core NATS, stored by TM_TICKS)."""
    ts = ts or now_us()
    tick = {"symbol": symbol, "last": str(price), "ts": ts, "ingest_ts": ts, "provider": "test"}
    await nc.publish(tick_subject(symbol), messages.encode("tick", tick), headers={SEQ_HEADER: str(ts)})
    await nc.flush()


async def seed(nc: Any, accounts: dict[str, Account]) -> None:
    kv = await nc.jetstream().key_value(streams.HOLDINGS_BUCKET)
    await seed_accounts(kv, accounts)


def account(cash: str, positions: dict[str, tuple[str, str]] | None = None) -> Account:
    """``account("1000", {"AAPL": ("10", "180.00")})``: cash and (quantity, average cost)."""
    return Account(Decimal(cash), {s: Position(Decimal(q), Decimal(c)) for s, (q, c) in (positions or {}).items()})


class Inbox:
    """Collects messages on a subject; :meth:`wait_for` waits until a predicate holds."""

    def __init__(self) -> None:
        self.msgs: list[Any] = []
        self._changed = asyncio.Event()
        self.sub: Any = None

    @classmethod
    async def on(cls, nc: Any, subject: str) -> Inbox:
        inbox = cls()

        async def cb(msg: Any) -> None:
            inbox.msgs.append(msg)
            inbox._changed.set()

        inbox.sub = await nc.subscribe(subject, cb=cb)
        await nc.flush()
        return inbox

    async def wait_for(self, pred, timeout: float = 10) -> Any:
        """The first message (from the start) satisfying ``pred``; fails after ``timeout``."""

        async def loop():
            seen = 0
            while True:
                for msg in self.msgs[seen:]:
                    if pred(msg):
                        return msg
                seen = len(self.msgs)
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(loop(), t(timeout))
