"""Permissions, limits and wire options through a real edge and real NATS."""

import json

import msgpack
import nats
import pytest
import websockets

from tests.edge.test_auth import closed_with
from tests.support.timing import eventually
from tests.support.tokens import token
from tests.support.wsclient import Client
from tickmesh.contracts.channels import Kind, tick_subject, user_subject
from tickmesh.contracts.codes import CloseCode, ErrorCode


def tick(symbol, last="10.00", ts=1_795_000_000_000_000):
    return json.dumps({"symbol": symbol, "last": last, "ts": ts, "ingest_ts": ts, "provider": "test"}).encode()


async def test_entitlements_decide_market_data(edge):
    c = await Client.login(edge.ws_url, token("alice", ent=("equities",)))
    assert (await c.request("sub", ch="prices:AAPL"))[0]["op"] == "ok"
    reply, _ = await c.request("sub", ch="prices:BTC-USD")
    assert reply["code"] == ErrorCode.NOT_ENTITLED and "crypto" in reply["reason"]
    await c.close()


async def test_users_only_ever_receive_their_own_channels(edge, nats_mon):
    alice = await Client.login(edge.ws_url, token("alice"))
    bob = await Client.login(edge.ws_url, token("bob"))
    assert (await alice.request("sub", ch="portfolio"))[0]["op"] == "ok"
    assert (await bob.request("sub", ch="portfolio"))[0]["op"] == "ok"
    assert (await alice.request("sub", ch="portfolio:bob"))[0]["code"] == ErrorCode.FORBIDDEN
    assert (await alice.request("sub", ch="trades:bob"))[0]["code"] == ErrorCode.FORBIDDEN
    nc = await nats.connect(nats_mon.url)
    for user, value in (("bob", "900.00"), ("alice", "100.00")):
        await nc.publish(
            user_subject(Kind.PORTFOLIO, user), json.dumps({"total_value": value}).encode(), headers={"Tm-Seq": "5"}
        )
    await nc.flush()
    [a] = await alice.messages(1)
    [b] = await bob.messages(1)
    assert a["ch"] == "portfolio" and a["data"] == {"total_value": "100.00"}
    assert b["ch"] == "portfolio" and b["data"] == {"total_value": "900.00"}
    _, seen = await alice.request("ping")
    assert not [f for f in seen if f["op"] == "msg"]
    await nc.close()
    await alice.close()
    await bob.close()


async def test_support_reads_another_users_portfolio_and_the_read_is_logged(edge, nats_mon):
    sam = await Client.login(edge.ws_url, token("sam", roles=("support",)))
    assert (await sam.request("sub", ch="portfolio:bob"))[0]["op"] == "ok"
    nc = await nats.connect(nats_mon.url)
    await nc.publish(user_subject(Kind.PORTFOLIO, "bob"), b'{"total_value":"1.00"}', headers={"Tm-Seq": "1"})
    await nc.close()
    [m] = await sam.messages(1)
    assert m["ch"] == "portfolio:bob"
    await sam.close()
    audit = await eventually(
        lambda: [json.loads(line) for line in edge.output().splitlines() if "audit.cross_user_read" in line]
    )
    assert audit[0]["user"] == "sam" and audit[0]["owner"] == "bob"


async def test_connections_per_user_are_limited(edge_factory):
    edge = edge_factory(EDGE_MAX_CONNS_PER_USER="2")
    first = [await Client.login(edge.ws_url, token("alice")) for _ in range(2)]
    third = await Client.connect(edge.ws_url)
    await third.send({"op": "auth", "id": 1, "token": token("alice")})
    assert await closed_with(third) == CloseCode.CONNECTION_LIMIT
    other = await Client.login(edge.ws_url, token("bob"))  # other users are unaffected
    await first[0].close()

    async def log_in():  # the slot is freed once the edge has seen the close
        c = await Client.connect(edge.ws_url)
        reply, _ = await c.request("auth", token=token("alice"))
        if reply["op"] == "welcome":
            return c
        await c.close()
        return None

    again = await eventually(log_in)  # a freed slot can be used again
    for c in (*first, other, again):
        await c.close()


async def test_connections_per_address_are_limited(edge_factory):
    edge = edge_factory(EDGE_MAX_CONNS_PER_IP="2")
    held = [await Client.connect(edge.ws_url) for _ in range(2)]
    extra = await Client.connect(edge.ws_url)
    assert await closed_with(extra) == CloseCode.CONNECTION_LIMIT
    for c in held:
        await c.close()


async def test_commands_are_rate_limited_per_user(edge_factory, nats_mon):
    edge = edge_factory(EDGE_CMD_RATE="1", EDGE_CMD_BURST="3")
    nc = await nats.connect(nats_mon.url)

    async def answer(msg):
        await msg.respond(b'{"ok":true,"data":{"alerts":[]}}')

    await nc.subscribe("tm.cmd.alert.list", cb=answer)
    a1 = await Client.login(edge.ws_url, token("alice"))
    a2 = await Client.login(edge.ws_url, token("alice"))
    replies = [(await c.request("cmd", name="alert.list"))[0] for c in (a1, a2, a1, a2)]
    assert [r["op"] for r in replies[:3]] == ["ok", "ok", "ok"]
    assert replies[3]["code"] == ErrorCode.RATE_LIMITED  # the bucket is the user's, not the connection's
    bob = await Client.login(edge.ws_url, token("bob"))
    assert (await bob.request("cmd", name="alert.list"))[0]["op"] == "ok"
    for c in (a1, a2, bob):
        await c.close()
    await nc.close()


async def test_foreign_browser_origins_are_refused_at_the_handshake(edge_factory):
    edge = edge_factory(EDGE_ALLOWED_ORIGINS="https://app.example.com")
    with pytest.raises(websockets.InvalidStatus) as info:
        await websockets.connect(edge.ws_url, origin="https://evil.example.net")
    assert info.value.response.status_code == 403
    ok = await websockets.connect(edge.ws_url, origin="https://app.example.com")
    await ok.close()
    same = await websockets.connect(edge.ws_url, origin=f"http://127.0.0.1:{edge.port}")
    await same.close()


async def test_msgpack_subprotocol_carries_the_same_frames(edge, nats_mon):
    ws = await websockets.connect(edge.ws_url, subprotocols=["tickmesh.v1.msgpack"])
    assert ws.subprotocol == "tickmesh.v1.msgpack"
    await ws.send(msgpack.packb({"op": "auth", "id": 1, "token": token()}))
    assert msgpack.unpackb(await ws.recv())["op"] == "welcome"
    await ws.send(msgpack.packb({"op": "sub", "id": 2, "ch": "prices:AAPL"}))
    assert msgpack.unpackb(await ws.recv()) == {"op": "ok", "id": 2}
    nc = await nats.connect(nats_mon.url)
    await nc.publish(tick_subject("AAPL"), tick("AAPL", "187.20"), headers={"Tm-Seq": "3"})
    await nc.close()
    frame = msgpack.unpackb(await ws.recv())
    if isinstance(frame, list):
        frame = frame[-1]
    assert frame["op"] == "msg" and frame["seq"] == 3 and frame["data"]["last"] == "187.20"
    await ws.close()


async def test_unknown_subprotocols_are_refused(edge):
    with pytest.raises(websockets.InvalidStatus):
        await websockets.connect(edge.ws_url, subprotocols=["graphql-ws"])


async def test_permessage_deflate_is_declined_by_default(edge):
    ws = await websockets.connect(edge.ws_url)  # websockets offers permessage-deflate by default
    assert "permessage-deflate" not in (ws.response.headers.get("Sec-WebSocket-Extensions") or "")
    await ws.close()


async def test_permessage_deflate_can_be_switched_on(edge_factory):
    edge = edge_factory(EDGE_PERMESSAGE_DEFLATE="on")
    ws = await websockets.connect(edge.ws_url)
    assert "permessage-deflate" in (ws.response.headers.get("Sec-WebSocket-Extensions") or "")
    await ws.close()
