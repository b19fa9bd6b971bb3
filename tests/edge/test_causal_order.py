"""Causal order across channels through a real edge, NATS and clients, with reordering forced:
each valuation is published *before* the fill it includes, and the client must still see the
fill first (PROTOCOL.md, "Causal order"). Assertions are on the frames clients receive."""

from __future__ import annotations

import asyncio
import itertools
import random

import nats
import orjson

from tests.support.tokens import token
from tests.support.wsclient import Client
from tickmesh import streams
from tickmesh.contracts.channels import Kind, tick_subject, user_subject
from tickmesh.contracts.messages import SEQ_HEADER
from tickmesh.publish import Publisher

USERS = 12
ROUNDS = 8
_versions = itertools.count(1)


async def publish_portfolio(nc, user: str, trade_seq: int | None, value: int) -> None:
    body = {"user": user, "total_value": str(value)}
    if trade_seq is not None:
        body["trade_seq"] = trade_seq
    await nc.publish(user_subject(Kind.PORTFOLIO, user), orjson.dumps(body), headers={SEQ_HEADER: str(next(_versions))})


async def fill(pub: Publisher, user: str, n: int) -> int:
    ack = await pub.execution(
        user,
        exec_id=f"x-{user}-{n}",
        order_id=f"o-{n}",
        client_order_id=f"c-{n}",
        symbol="AAPL",
        side="buy",
        order_type="market",
        status="filled",
        quantity="1",
        price="1",
    )
    return ack.seq


async def ticker(nc, stop: asyncio.Event) -> None:
    """Load beside the orders: prices every few milliseconds on a channel everyone reads."""
    i = 0
    while not stop.is_set():
        i += 1
        tick = {
            "symbol": "AAPL",
            "last": f"{100 + i % 50}.00",
            "ts": 1_795_000_000_000_000 + i,
            "ingest_ts": 1_795_000_000_000_000 + i,
            "provider": "t",
        }
        await nc.publish(tick_subject("AAPL"), orjson.dumps(tick), headers={SEQ_HEADER: str(i)})
        await asyncio.sleep(0.01)


async def reordered_rounds(
    nc, js, pub: Publisher, users: list[str], rounds: int, rng: random.Random
) -> dict[str, list[int]]:
    """Each round: every user's valuation naming the fill's position goes out first, then, after
    a random delay, the fills themselves (one publisher, so positions are known in advance)."""
    fills: dict[str, list[int]] = {u: [] for u in users}
    for r in range(rounds):
        last = (await js.stream_info(streams.USER_EVENTS)).state.last_seq
        order = rng.sample(users, len(users))
        for i, user in enumerate(order):
            await publish_portfolio(nc, user, last + 1 + i, 1000 + r)
        await nc.flush()
        await asyncio.sleep(rng.uniform(0.05, 0.4))
        for i, user in enumerate(order):
            seq = await fill(pub, user, r)
            assert seq == last + 1 + i  # the position the valuation named
            fills[user].append(seq)
    return fills


async def collect(client: Client, want_trades: int) -> list[dict]:
    """Trades and portfolio frames until ``want_trades`` fills and a value naming the last of them
    have arrived (values in between may be conflated: a state channel keeps the latest)."""
    frames, trades, last_fill, last_named = [], 0, None, None
    while trades < want_trades or last_named != last_fill:
        frame = await client.recv(timeout=30)
        if frame.get("op") == "ping":
            await client.send({"op": "pong"})
        elif frame.get("op") == "msg" and frame["ch"] in ("trades", "portfolio"):
            frames.append(frame)
            if frame["ch"] == "trades":
                trades, last_fill = trades + 1, frame["seq"]
            else:
                last_named = frame["data"].get("trade_seq")
    return frames


def first_violation(frames: list[dict]) -> dict | None:
    """A portfolio frame shown before the fill it names, if any."""
    shown: set[int] = set()
    for f in frames:
        if f["ch"] == "trades":
            shown.add(f["seq"])
        elif (s := f["data"].get("trade_seq")) is not None and s not in shown:
            return f
    return None


async def setup(edge, nats_url: str) -> tuple:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await streams.ensure(js)
    users = [f"u{i}" for i in range(USERS)]
    clients = {}
    for user in users:
        c = await Client.login(edge.ws_url, token(user))
        for ch in ("trades", "portfolio", "prices:AAPL"):
            ok, _ = await c.request("sub", ch=ch)
            assert ok["op"] == "ok", ok
        clients[user] = c
    return nc, js, users, clients


async def test_a_value_never_reaches_the_client_before_the_fill_it_includes(edge_factory, nats_mon):
    edge = edge_factory()
    nc, js, users, clients = await setup(edge, nats_mon.url)
    stop = asyncio.Event()
    noise = asyncio.ensure_future(ticker(nc, stop))
    readers = asyncio.gather(*(collect(clients[u], ROUNDS) for u in users))
    try:
        fills = await reordered_rounds(nc, js, Publisher(nc), users, ROUNDS, random.Random(7))
        received = await readers
    finally:
        stop.set()
        await noise
    for user, frames in zip(users, received, strict=True):
        assert [f["seq"] for f in frames if f["ch"] == "trades"] == fills[user]
        assert first_violation(frames) is None, (user, frames)
        # Values came in order (a held one is replaced by a newer one, never overtaken by an older).
        named = [f["data"]["trade_seq"] for f in frames if f["ch"] == "portfolio" and "trade_seq" in f["data"]]
        assert named == sorted(named) and named[-1] == fills[user][-1]
    for c in clients.values():
        await c.close()
    await nc.close()


async def test_without_the_hold_the_same_traffic_shows_values_first(edge_factory, nats_mon):
    """The reordering above is real: with EDGE_CAUSAL_HOLD_MS=0 clients do see values first."""
    edge = edge_factory(EDGE_CAUSAL_HOLD_MS="0")
    nc, js, users, clients = await setup(edge, nats_mon.url)
    readers = asyncio.gather(*(collect(clients[u], 2) for u in users[:3]))
    await reordered_rounds(nc, js, Publisher(nc), users[:3], 2, random.Random(3))
    received = await readers
    assert any(first_violation(frames) is not None for frames in received)
    for c in clients.values():
        await c.close()
    await nc.close()


async def test_a_value_naming_a_fill_that_never_comes_is_sent_after_the_hold(edge_factory, nats_mon):
    edge = edge_factory(EDGE_CAUSAL_HOLD_MS="300")
    nc = await nats.connect(nats_mon.url)
    await streams.ensure(nc.jetstream())
    c = await Client.login(edge.ws_url, token("alice"))
    await c.request("sub", ch="trades")
    await c.request("sub", ch="portfolio")
    last = (await nc.jetstream().stream_info(streams.USER_EVENTS)).state.last_seq
    await publish_portfolio(nc, "alice", last + 50, 1)
    [value] = await c.messages(1)
    assert value["ch"] == "portfolio" and value["data"]["trade_seq"] == last + 50
    # The position counts as passed: the next value naming it goes out at once, before a fill.
    await publish_portfolio(nc, "alice", last + 50, 2)
    await fill(Publisher(nc), "alice", 99)
    frames = await c.messages(2)
    assert [f["ch"] for f in frames] == ["portfolio", "trades"]
    await c.close()
    await nc.close()
