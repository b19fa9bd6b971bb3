"""The audit trail of trade events through real edges, NATS (JetStream) and clients: deliveries
over WebSocket, SSE and polling are recorded per connection, the client's acks too, and support
staff get the answer over the edge (``audit.trades``) or from ``tickmesh audit trades``."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import nats
import pytest

from tests.support.httpclient import SSE, poll, ticket
from tests.support.timing import t
from tests.support.tokens import token
from tests.support.wsclient import Client
from tickmesh import streams
from tickmesh.contracts.codes import ErrorCode
from tickmesh.publish import Publisher

FAST = {"EDGE_AUDIT_FLUSH_MS": "50"}


async def publisher(url: str) -> tuple[nats.NATS, Publisher]:
    nc = await nats.connect(url)
    await streams.ensure(nc.jetstream())
    return nc, Publisher(nc)


async def fill(pub: Publisher, user: str, n: int, status: str = "filled") -> int:
    ack = await pub.execution(
        user,
        exec_id=f"x-{user}-{n}-{status}",
        order_id=f"o-{n}",
        client_order_id=f"c-{n}",
        symbol="AAPL",
        side="buy",
        order_type="market",
        status=status,
        quantity="1",
        price="100" if status == "filled" else None,
    )
    return ack.seq


async def ask(support: Client, user: str, order: str, until) -> dict:
    """Ask ``audit.trades`` until ``until(answer)`` holds (records are written in batches)."""
    deadline = time.monotonic() + t(15)
    while True:
        reply, _ = await support.request("cmd", name="audit.trades", data={"user": user, "order": order})
        assert reply["op"] == "ok", reply
        if until(reply["data"]) or time.monotonic() > deadline:
            return reply["data"]
        await asyncio.sleep(0.1)


async def test_each_connection_gets_a_delivery_record_and_acks_are_recorded(edge_factory, nats_mon):
    edge = edge_factory(**FAST)
    nc, pub = await publisher(nats_mon.url)
    a1 = await Client.login(edge.ws_url, token("alice"))
    a2 = await Client.login(edge.ws_url, token("alice"))
    bob = await Client.login(edge.ws_url, token("bob"))
    support = await Client.login(edge.ws_url, token("sam", roles=("support",)))
    for c in (a1, a2, bob):
        ok, _ = await c.request("sub", ch="trades")
        assert ok["op"] == "ok"
    await support.request("sub", ch="trades:alice")  # a support view is not a delivery to alice
    seq = await fill(pub, "alice", 1)
    await fill(pub, "bob", 1)
    [m1], [m2], _ = await a1.messages(1), await a2.messages(1), await bob.messages(1)
    assert m1["seq"] == m2["seq"] == seq
    await a1.send({"op": "ack", "ch": "trades", "seqs": [seq]})
    reply, _ = await a1.request("ack", ch="trades", seqs=[seq])  # a repeat is recorded once
    assert reply["op"] == "ok"

    answer = await ask(support, "alice", "c-1", lambda a: len(a["deliveries"]) >= 3)
    [execution] = answer["executions"]
    assert execution["seq"] == seq and execution["status"] == "filled" and execution["connections"] == 2
    assert execution["delivered_at"] and execution["acked_at"] >= execution["delivered_at"]
    records = sorted((r["event"], r["conn_id"], r["transport"], r["seq"]) for r in answer["deliveries"])
    assert records == sorted(
        [
            ("delivered", a1.welcome["conn_id"], "ws", seq),
            ("delivered", a2.welcome["conn_id"], "ws", seq),
            ("acked", a1.welcome["conn_id"], "ws", seq),
        ]
    )
    assert {r["edge"] for r in answer["deliveries"]} and all(
        r["exec_id"] == "x-alice-1-filled" for r in answer["deliveries"]
    )
    # The order id finds the same; bob's deliveries are his own; users may not ask.
    assert (await ask(support, "alice", "o-1", lambda a: True))["executions"][0]["seq"] == seq
    assert [r["conn_id"] for r in (await ask(support, "bob", "o-1", lambda a: a["deliveries"]))["deliveries"]] == [
        bob.welcome["conn_id"]
    ]
    refused, _ = await a1.request("cmd", name="audit.trades", data={"user": "alice", "order": "c-1"})
    assert refused["op"] == "err" and refused["code"] == ErrorCode.FORBIDDEN
    assert '"audit.trade_query"' in edge.output() and '"owner":"alice"' in edge.output()
    for c in (a1, a2, bob, support):
        await c.close()
    await nc.close()


async def test_replayed_trades_are_delivered_too_and_an_ack_names_only_what_was_sent(edge_factory, nats_mon):
    edge = edge_factory(**FAST)
    nc, pub = await publisher(nats_mon.url)
    c = await Client.login(edge.ws_url, token("alice"))
    ok, _ = await c.request("sub", ch="trades")
    await c.close()
    seq = await fill(pub, "alice", 2)
    c = await Client.login(edge.ws_url, token("alice"))
    ok, _ = await c.request("sub", ch="trades", since={"epoch": ok["epoch"], "seq": ok["seq"]})
    [m] = await c.messages(1)
    assert m["seq"] == seq and ok["replayed"] == 1
    await c.send({"op": "ack", "ch": "trades", "seqs": [seq, seq + 1000]})  # the second was never sent here
    support = await Client.login(edge.ws_url, token("ada", roles=("admin",)))
    answer = await ask(support, "alice", "c-2", lambda a: len(a["deliveries"]) >= 2)
    assert sorted((r["event"], r["seq"]) for r in answer["deliveries"]) == [("acked", seq), ("delivered", seq)]
    await c.close()
    await support.close()
    await nc.close()


@pytest.mark.engines("direct")
async def test_sse_and_polling_deliveries_are_recorded_and_the_cli_answers(edge_factory, nats_mon):
    edge = edge_factory(**FAST)
    nc, pub = await publisher(nats_mon.url)
    sse = await SSE.open(edge.http, await ticket(edge.http, token("alice")), ["trades"])
    while (await sse.event())["event"] != "ok":
        pass
    status, first = await poll(edge.http, await ticket(edge.http, token("alice")), ["trades"])
    assert status == 200
    seq = await fill(pub, "alice", 3)
    [m] = await sse.messages(1)
    assert m["seq"] == seq
    status, body = await poll(edge.http, await ticket(edge.http, token("alice")), ["trades"], first["cursor"])
    assert [f["seq"] for f in body["frames"] if f["op"] == "msg"] == [seq]
    await sse.close()

    env = dict(os.environ, NATS_URL=nats_mon.url)
    deadline = time.monotonic() + t(15)
    while True:
        done = subprocess.run(
            [sys.executable, "-m", "tickmesh", "audit", "trades", "--user", "alice", "--order", "o-3"],
            env=env,
            capture_output=True,
            text=True,
            timeout=t(30),
        )
        if ("sse conn" in done.stdout and "poll conn" in done.stdout) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"seq {seq}  filled" in done.stdout and "(2 connection(s))" in done.stdout, done.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "tickmesh", "audit", "trades", "--user", "alice", "--order", "nope"],
        env=env,
        capture_output=True,
        text=True,
        timeout=t(30),
    )
    assert missing.returncode == 1 and "no trade event of order nope" in missing.stdout
    await nc.close()
