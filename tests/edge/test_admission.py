"""One admission for every transport and endpoint: revocation, connection limits and rate limits
answer with the same codes over the WebSocket, SSE, long polling, ``/ticket`` and ``/cmd``."""

import asyncio
import json
import time

import aiohttp
import nats

from tests.edge.test_auth import closed_with
from tests.edge.test_commands import ORDER, responder
from tests.support import httpclient
from tests.support.tokens import token
from tests.support.wsclient import Client
from tickmesh.contracts.codes import CloseCode, ErrorCode
from tickmesh.contracts.commands import reply_ok


async def revoke(url: str, user: str) -> None:
    nc = await nats.connect(url)
    await nc.publish("tm.ctl.revoke", json.dumps({"user": user}).encode())
    await nc.flush()
    await nc.close()


async def post_ticket(http: str, tok: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{http}/ticket", headers={"Authorization": f"Bearer {tok}"}) as resp:
            return resp.status, await resp.json()


async def wait_refused(ws_url: str, tok: str) -> None:
    """Revocations reach an edge asynchronously: wait until a new connection is refused."""
    for _ in range(100):
        c = await Client.connect(ws_url)
        await c.send({"op": "auth", "id": 1, "token": tok})
        try:
            frame = await c.recv(timeout=2)
        except Exception:
            if c.ws.close_code == CloseCode.FORBIDDEN:
                return
            raise
        await c.close()
        assert frame["op"] == "welcome"
        await asyncio.sleep(0.05)
    raise AssertionError("the revocation never reached the edge")


async def test_a_revoked_user_can_neither_trade_nor_get_tickets_nor_stream(edge, nats_mon):
    runs = []

    async def fill(req):
        runs.append(req.user)
        return reply_ok({"order_id": "o", "status": "filled"})

    nc, _ = await responder(nats_mon.url, "tm.cmd.order.submit", fill)
    old = token("alice")
    ticket = await httpclient.ticket(edge.http, old)  # issued before the revocation
    status, reply = await httpclient.command(edge.http, {"name": "order.submit", "data": ORDER}, token=old)
    assert status == 200 and reply["op"] == "ok" and runs == ["alice"]

    await revoke(nats_mon.url, "alice")
    await wait_refused(edge.ws_url, old)

    status, reply = await httpclient.command(edge.http, {"name": "order.submit", "data": ORDER}, token=old)
    assert (status, reply["op"], reply["code"]) == (403, "err", CloseCode.FORBIDDEN)
    status, reply = await httpclient.command(edge.http, {"name": "order.submit", "key": "k1", "data": ORDER}, token=old)
    assert (status, reply["code"]) == (403, CloseCode.FORBIDDEN)
    assert runs == ["alice"]  # nothing more reached the broker
    status, reply = await post_ticket(edge.http, old)
    assert (status, reply["code"]) == (403, CloseCode.FORBIDDEN)
    status, reply = await httpclient.poll(edge.http, ticket, ["trades"])
    assert (status, reply["code"]) == (403, CloseCode.FORBIDDEN)

    # A token issued after the revocation is a new login: it works everywhere.
    fresh = token("alice", now=time.time() + 2)
    status, reply = await httpclient.command(edge.http, {"name": "order.submit", "data": ORDER}, token=fresh)
    assert status == 200 and runs == ["alice", "alice"]
    assert (await post_ticket(edge.http, fresh))[0] == 200
    c = await Client.login(edge.ws_url, fresh)
    await c.close()
    await nc.close()


async def test_an_edge_started_after_a_revocation_refuses_the_user_too(edge_factory, nats_mon):
    first = edge_factory()
    old = token("alice")
    await revoke(nats_mon.url, "alice")
    await wait_refused(first.ws_url, old)
    later = edge_factory()  # reads the revocations in force before it reports ready
    c = await Client.connect(later.ws_url)
    await c.send({"op": "auth", "id": 1, "token": old})
    assert await closed_with(c) == CloseCode.FORBIDDEN
    status, reply = await httpclient.command(later.http, {"name": "alert.list"}, token=old)
    assert (status, reply["code"]) == (403, CloseCode.FORBIDDEN)
    bob = await Client.login(later.ws_url, token("bob"))
    await bob.close()


async def test_a_retry_of_a_known_key_gets_its_reply_even_when_the_rate_limit_is_spent(edge_factory, nats_mon):
    edge = edge_factory(EDGE_CMD_RATE="0.01", EDGE_CMD_BURST="2")
    count = 0

    async def fill(req):
        nonlocal count
        count += 1
        return reply_ok({"order_id": f"ord-{count}", "status": "filled"})

    nc, _ = await responder(nats_mon.url, "tm.cmd.order.submit", fill)
    c = await Client.login(edge.ws_url, token("alice"))
    first, _ = await c.request("cmd", name="order.submit", key="k-1", data=ORDER)
    second, _ = await c.request("cmd", name="order.submit", key="k-2", data=ORDER)
    assert first["op"] == second["op"] == "ok"
    # The bucket is empty: a new command is refused, with or without a key ...
    refused, _ = await c.request("cmd", name="order.submit", key="k-3", data=ORDER)
    assert refused["code"] == ErrorCode.RATE_LIMITED
    refused, _ = await c.request("cmd", name="order.submit", data=ORDER)
    assert refused["code"] == ErrorCode.RATE_LIMITED
    # ... but retries of known keys get the first reply, over the WebSocket and over HTTP,
    # as often as the client needs, and the broker ran each order once.
    for _ in range(3):
        again, _ = await c.request("cmd", name="order.submit", key="k-1", data=ORDER)
        assert again["op"] == "ok" and again["data"] == first["data"]
    status, again = await httpclient.command(
        edge.http, {"name": "order.submit", "key": "k-2", "data": ORDER}, token=token("alice")
    )
    assert status == 200 and again["data"] == second["data"]
    assert count == 2
    await c.close()
    await nc.close()


async def test_the_per_address_limit_has_one_code_on_every_transport(edge_factory):
    edge = edge_factory(EDGE_MAX_CONNS_PER_IP="1")
    tok = token("alice")
    held = await Client.login(edge.ws_url, tok)
    over = await Client.connect(edge.ws_url)
    assert await closed_with(over) == CloseCode.CONNECTION_LIMIT
    ticket = await httpclient.ticket(edge.http, tok)
    status, reply = await httpclient.poll(edge.http, ticket, ["trades"])
    assert (status, reply["op"], reply["code"]) == (429, "err", CloseCode.CONNECTION_LIMIT)
    status, reply = await httpclient.command(edge.http, {"name": "alert.list"}, token=tok)
    assert (status, reply["code"]) == (429, CloseCode.CONNECTION_LIMIT)
    await held.close()


async def test_http_endpoints_are_rate_limited_per_user_and_per_address(edge_factory):
    edge = edge_factory(EDGE_HTTP_RATE="0.01", EDGE_HTTP_BURST="2", EDGE_HTTP_IP_RATE="0.01", EDGE_HTTP_IP_BURST="5")
    alice, bob = token("alice"), token("bob")
    assert [(await post_ticket(edge.http, alice))[0] for _ in range(3)] == [200, 200, 429]
    status, reply = await post_ticket(edge.http, alice)
    assert (status, reply["code"]) == (429, ErrorCode.RATE_LIMITED) and "retry in" in reply["reason"]
    # Bob has a bucket of his own, but the address's bucket (5) is spent after his first two.
    assert [(await post_ticket(edge.http, bob))[0] for _ in range(2)] == [200, 429]
