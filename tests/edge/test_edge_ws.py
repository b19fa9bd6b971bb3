"""The edge over real sockets: a real Hypercorn edge process, a real nats-server, a real client."""

import json
import urllib.request

import nats
import pytest
import websockets

from tests.edge.conftest import edge_subjects
from tests.support.timing import eventually
from tests.support.tokens import token
from tests.support.wsclient import Client
from tickmesh.contracts.channels import tick_subject
from tickmesh.contracts.codes import ErrorCode


def tick(symbol, last="10.00", ts=1_795_000_000_000_000):
    return json.dumps({"symbol": symbol, "last": last, "ts": ts, "ingest_ts": ts, "provider": "test"}).encode()


async def publish(nc, symbol, n, seq0=1):
    for i in range(n):
        await nc.publish(tick_subject(symbol), tick(symbol, f"{10 + i}.00"), headers={"Tm-Seq": str(seq0 + i)})
    await nc.flush()


async def until_seq(client, last_seq, timeout=10):
    """Collect msg frames until each channel in ``last_seq`` has reached the given seq."""
    msgs, reached = [], {}
    while any(reached.get(ch, 0) < seq for ch, seq in last_seq.items()):
        [m] = await client.messages(1, timeout)
        msgs.append(m)
        reached[m["ch"]] = m["seq"]
    return msgs


async def test_client_receives_only_its_channels_then_nothing_after_unsub(edge, nats_mon):
    nc = await nats.connect(nats_mon.url)
    c = await Client.login(edge.ws_url, token())
    try:
        assert (await c.request("sub", ch="prices:AAPL"))[0]["op"] == "ok"
        assert (await c.request("sub", ch="prices:BRK.B"))[0]["op"] == "ok"
        await publish(nc, "MSFT", 3)
        await publish(nc, "AAPL", 3, seq0=100)
        await publish(nc, "BRK.B", 2)
        msgs = await until_seq(c, {"prices:AAPL": 102, "prices:BRK.B": 2})
        assert {m["ch"] for m in msgs} == {"prices:AAPL", "prices:BRK.B"}
        aapl = [m for m in msgs if m["ch"] == "prices:AAPL"]
        # A state channel may conflate a burst, but never reorders and always ends on the latest.
        assert [m["seq"] for m in aapl] == sorted({m["seq"] for m in aapl})
        assert aapl[-1]["data"]["last"] == "12.00"

        reply, _ = await c.request("unsub", ch="prices:AAPL")
        assert reply == {"op": "ok", "id": 4}
        await publish(nc, "AAPL", 3, seq0=200)
        await publish(nc, "BRK.B", 1, seq0=50)
        # NATS keeps one publisher's order, so the edge handled the AAPL ticks before BRK.B's:
        # once BRK.B's arrives, no AAPL frame may have come before it.
        [m] = await c.messages(1)
        assert m["ch"] == "prices:BRK.B" and m["seq"] == 50
    finally:
        await c.close()
        await nc.close()


async def test_one_upstream_subscription_per_subject_shared_by_all_clients(edge, nats_mon):
    clients = [await Client.login(edge.ws_url, token(f"u{i}")) for i in range(3)]
    try:
        for c in clients:
            await c.request("sub", ch="prices:AAPL")
        await clients[0].request("sub", ch="prices:EUR/USD")
        assert edge_subjects(nats_mon) == ["tm.tick.AAPL", "tm.tick.EUR_2FUSD"]
        nc = await nats.connect(nats_mon.url)
        await publish(nc, "AAPL", 1)
        await nc.close()
        for c in clients:
            assert (await c.messages(1))[0]["ch"] == "prices:AAPL"
        await clients[0].close()
        await clients[1].request("unsub", ch="prices:AAPL")
        await eventually(lambda: edge_subjects(nats_mon) == ["tm.tick.AAPL"])
        await clients[2].close()
        await eventually(lambda: edge_subjects(nats_mon) == [])
    finally:
        for c in clients:
            await c.close()


async def test_bad_input_over_the_socket_never_closes_the_connection(edge):
    c = await Client.login(edge.ws_url, token(), max_size=None)
    try:
        for raw, code in [
            ("{not json", ErrorCode.MALFORMED_FRAME),
            ('{"op":"fly","id":1}', ErrorCode.UNKNOWN_OP),
            ('{"op":"sub","id":2}', ErrorCode.INVALID_FIELD),
            ('{"op":"sub","id":3,"ch":"prices:>"}', ErrorCode.BAD_CHANNEL),
            ('{"op":"sub","id":4,"ch":"prices:AAPL\\u0000"}', ErrorCode.BAD_CHANNEL),
            ('{"op":"sub","id":5,"ch":"prices:ZZZZZ"}', ErrorCode.UNKNOWN_CHANNEL),
            ('{"op":"ping","id":6,"pad":"' + "x" * 2000 + '"}', ErrorCode.FRAME_TOO_LARGE),
            (b"\x00\xff\x10binary", ErrorCode.MALFORMED_FRAME),
        ]:
            await c.send(raw)
            frame = await c.recv()
            assert frame["op"] == "err" and frame["code"] == code, (raw, frame)
        assert (await c.request("ping"))[0]["op"] == "pong"
    finally:
        await c.close()


async def test_a_message_over_the_hard_limit_closes_with_1009(edge):
    c = await Client.connect(edge.ws_url)
    await c.send("x" * 50_000)
    with pytest.raises(websockets.ConnectionClosed) as info:
        await c.recv()
    assert info.value.rcvd.code == 1009
    # The edge is still fine for everyone else.
    other = await Client.login(edge.ws_url, token())
    assert (await other.request("ping"))[0]["op"] == "pong"
    await other.close()


async def test_health_and_readiness(edge):
    for path in ("/healthz", "/readyz"):
        with urllib.request.urlopen(edge.http + path) as resp:
            assert resp.status == 200
