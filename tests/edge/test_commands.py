"""Commands through a real edge to a real NATS responder: identity, errors, idempotency."""

import asyncio
import time

import nats

from tests.support.tokens import token
from tests.support.wsclient import Client
from tickmesh.contracts.codes import ErrorCode
from tickmesh.contracts.commands import decode_request, reply_err, reply_ok

ORDER = {"client_order_id": "o-1", "symbol": "AAPL", "side": "buy", "type": "market", "quantity": "10"}


async def responder(url, subject, handler):
    nc = await nats.connect(url)
    seen = []

    async def on(msg):
        req = decode_request(msg.data)
        seen.append(req)
        await msg.respond(await handler(req))

    await nc.subscribe(subject, queue="test", cb=on)
    await nc.flush()
    return nc, seen


async def test_the_service_sees_the_verified_user_and_its_reply_comes_back(edge, nats_mon):
    async def fill(req):
        return reply_ok({"order_id": f"{req.user}-1", "status": "filled", "price": "187.20"})

    nc, seen = await responder(nats_mon.url, "tm.cmd.order.submit", fill)
    c = await Client.login(edge.ws_url, token("alice"))
    reply, _ = await c.request("cmd", name="order.submit", data=ORDER)
    assert reply["op"] == "ok" and reply["data"] == {"order_id": "alice-1", "status": "filled", "price": "187.20"}
    assert seen[0].user == "alice" and seen[0].data["quantity"] == "10"
    await c.close()
    await nc.close()


async def test_service_rejections_keep_their_codes(edge, nats_mon):
    async def reject(req):
        return reply_err(603, "not enough cash")

    nc, _ = await responder(nats_mon.url, "tm.cmd.order.submit", reject)
    c = await Client.login(edge.ws_url, token("alice"))
    reply, _ = await c.request("cmd", name="order.submit", data=ORDER)
    assert reply["op"] == "err" and reply["code"] == 603 and reply["reason"] == "not enough cash"
    await c.close()
    await nc.close()


async def test_no_service_means_unavailable_and_a_slow_one_a_timeout(edge, nats_mon):
    c = await Client.login(edge.ws_url, token("alice"))
    reply, _ = await c.request("cmd", name="alert.list")
    assert reply["code"] == ErrorCode.UNAVAILABLE

    async def never(req):
        await asyncio.sleep(30)
        return reply_ok()

    nc, _ = await responder(nats_mon.url, "tm.cmd.alert.list", never)
    reply, _ = await c.request("cmd", name="alert.list", timeout=15)
    assert reply["code"] == ErrorCode.TIMEOUT
    # The connection kept serving while the command waited.
    assert (await c.request("ping"))[0]["op"] == "pong"
    await c.close()
    await nc.close()


async def test_a_retried_command_with_the_same_key_runs_once_on_any_edge(edge_factory, nats_mon):
    edges = [edge_factory(), edge_factory()]
    count = 0

    async def fill(req):
        nonlocal count
        count += 1
        await asyncio.sleep(0.3)
        return reply_ok({"order_id": f"ord-{count}", "status": "filled"})

    nc, seen = await responder(nats_mon.url, "tm.cmd.order.submit", fill)
    a = await Client.login(edges[0].ws_url, token("alice"))
    b = await Client.login(edges[1].ws_url, token("alice"))
    # Concurrent duplicates on two edges, then a late retry after a reconnect.
    r1, r2 = await asyncio.gather(
        a.request("cmd", name="order.submit", key="k-42", data=ORDER),
        b.request("cmd", name="order.submit", key="k-42", data=ORDER),
    )
    await a.close()
    a = await Client.login(edges[0].ws_url, token("alice"))
    r3, _ = await a.request("cmd", name="order.submit", key="k-42", data=ORDER)
    assert count == 1
    assert r1[0]["data"] == r2[0]["data"] == r3["data"] == {"order_id": "ord-1", "status": "filled"}
    assert seen[0].cmd_id == "k:k-42"
    # Another user's identical key is a different command.
    bob = await Client.login(edges[0].ws_url, token("bob"))
    r4, _ = await bob.request("cmd", name="order.submit", key="k-42", data=ORDER)
    assert count == 2 and r4["data"]["order_id"] == "ord-2"
    for c in (a, b, bob):
        await c.close()
    await nc.close()


async def test_a_command_left_pending_by_a_lost_edge_is_taken_over_by_its_retry(edge, nats_mon):
    """An edge killed mid-command leaves its `pending` marker behind; once the marker is older
    than the command's timeout, the client's retry with the same key runs the command."""
    from tickmesh import streams
    from tickmesh.contracts.channels import encode_token
    from tickmesh.contracts.commands import commands

    runs = []

    async def fill(req):
        runs.append(req.cmd_id)
        return reply_ok({"order_id": "o-taken-over", "status": "filled"})

    nc, _ = await responder(nats_mon.url, "tm.cmd.order.submit", fill)
    kv = await nc.jetstream().key_value(streams.COMMAND_REPLIES_BUCKET)
    stale = int((time.time() - commands()["order.submit"].timeout - 5) * 1000)
    key = ".".join(encode_token(part) for part in ("alice", "order.submit", "lost-1"))
    await kv.put(key, b"pending:%d" % stale)
    c = await Client.login(edge.ws_url, token("alice"))
    reply, _ = await c.request("cmd", name="order.submit", key="lost-1", data=ORDER, timeout=10)
    assert reply["op"] == "ok" and reply["data"]["order_id"] == "o-taken-over" and runs == ["k:lost-1"]
    again, _ = await c.request("cmd", name="order.submit", key="lost-1", data=ORDER)
    assert again["data"] == reply["data"] and runs == ["k:lost-1"]  # stored now: answered, not run
    assert "command.takeover" in edge.output()
    await c.close()
    await nc.close()
