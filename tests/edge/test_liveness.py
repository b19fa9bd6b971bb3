"""Heartbeats, slow consumers, NATS outages and drain, through a real edge."""

import asyncio
import json
import signal
import urllib.error
import urllib.request

import nats
import pytest

from tests.edge.test_auth import closed_with
from tests.support.natsserver import NatsServer
from tests.support.procs import EdgeProcess, free_port
from tests.support.timing import eventually
from tests.support.tokens import token
from tests.support.wsclient import Client
from tickmesh import streams
from tickmesh.contracts.channels import Kind, tick_subject, user_subject
from tickmesh.contracts.codes import CloseCode, ErrorCode


def tick(symbol, last, seq):
    return json.dumps({"symbol": symbol, "last": last, "ts": seq, "ingest_ts": seq, "provider": "t"}).encode()


async def test_server_heartbeat_and_dead_client_cleanup(edge_factory):
    edge = edge_factory(EDGE_HEARTBEAT_S="1")
    c = await Client.login(edge.ws_url, token())
    assert c.welcome["heartbeat_ms"] == 1000
    assert (await c.recv(3)) == {"op": "ping"}
    await c.send({"op": "pong"})
    assert (await c.recv(3)) == {"op": "ping"}
    # Stop answering: the edge closes within two intervals (plus its one-second clock).
    assert await closed_with(c, timeout=6) == CloseCode.HEARTBEAT_TIMEOUT


async def test_a_reader_that_stalls_gets_latest_prices_and_never_slows_the_others(edge, nats_mon):
    fast = await Client.login(edge.ws_url, token("fast"))
    slow = await Client.connect_small_buffers(edge.ws_url)
    await slow.request("auth", token=token("slow"))
    for c in (fast, slow):
        assert (await c.request("sub", ch="prices:AAPL"))[0]["op"] == "ok"
    nc = await nats.connect(nats_mon.url)
    payload_pad = "x" * 2000
    n = 3000
    for i in range(1, n + 1):
        body = json.dumps({"symbol": "AAPL", "last": f"{i}.00", "pad": payload_pad}).encode()
        await nc.publish(tick_subject("AAPL"), body, headers={"Tm-Seq": str(i)})
        if i % 200 == 0:
            await nc.flush()
    await nc.flush()
    # The fast reader sees the stream through to the last value, in order.
    seqs = []
    while not seqs or seqs[-1] < n:
        [m] = await fast.messages(1, timeout=10)
        seqs.append(m["seq"])
    assert seqs == sorted(seqs)
    # The stalled reader, once it reads again, gets the latest value, not a backlog of thousands.
    got = []
    while not got or got[-1] < n:
        [m] = await slow.messages(1, timeout=10)
        got.append(m["seq"])
    assert got[-1] == n and len(got) < n / 2
    await nc.close()
    await fast.close()
    await slow.close()


async def test_a_slow_consumer_of_an_event_channel_is_told_to_resume(edge_factory, nats_mon):
    edge = edge_factory(EDGE_OUTBOX_MAX_FRAMES="50", EDGE_OUTBOX_MAX_BYTES="200000")
    slow = await Client.connect_small_buffers(edge.ws_url)
    await slow.request("auth", token=token("alice"))
    assert (await slow.request("sub", ch="notifications"))[0]["op"] == "ok"
    nc = await nats.connect(nats_mon.url)
    js = nc.jetstream()
    # More than the kernel's socket buffers can absorb, so the edge's outbox has to hold them.
    acks = [
        js.publish(user_subject(Kind.NOTIFICATIONS, "alice"), json.dumps({"i": i, "pad": "y" * 16000}).encode())
        for i in range(1000)
    ]
    for i in range(0, len(acks), 100):
        await asyncio.gather(*acks[i : i + 100])
    await nc.close()
    assert await closed_with(slow, timeout=10) == CloseCode.SLOW_CONSUMER


async def test_nats_outage_is_reported_and_subscriptions_resume(edge, nats_mon):
    c = await Client.login(edge.ws_url, token())
    assert (await c.request("sub", ch="prices:MSFT"))[0]["op"] == "ok"
    nats_mon.stop()
    frame = await c.recv(10)
    assert frame == {"op": "status", "state": "degraded", "reason": "nats unavailable"}
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(edge.http + "/readyz")
    assert (await c.request("ping"))[0]["op"] == "pong"  # the connection itself stays up
    nats_mon.start()
    frame = await c.recv(15)
    assert frame == {"op": "status", "state": "ok"}
    nc = await nats.connect(nats_mon.url)

    async def delivered():  # the edge restores its subscription shortly after reconnecting
        await nc.publish(tick_subject("MSFT"), tick("MSFT", "415.00", 7), headers={"Tm-Seq": "7"})
        try:
            return await c.messages(1, timeout=0.5)
        except TimeoutError:
            return None

    [m] = await eventually(delivered, timeout=10)
    assert m["seq"] == 7  # sent again until it arrived: a state channel delivers it once
    await nc.close()
    with urllib.request.urlopen(edge.http + "/readyz") as resp:
        assert resp.status == 200
    await c.close()


async def test_sigterm_drains_with_jittered_reconnect_hints_then_closes(edge_factory):
    edge = edge_factory(EDGE_DRAIN_DEADLINE_S="2", EDGE_DRAIN_SPREAD_MS="1500")
    clients = [await Client.login(edge.ws_url, token(f"u{i}")) for i in range(5)]
    edge.proc.send_signal(signal.SIGTERM)
    hints = []
    for c in clients:
        frame = await c.recv(5)
        assert frame["op"] == "reconnect"
        hints.append(frame["after_ms"])
    assert all(0 <= h <= 1500 for h in hints)
    await clients[0].close()  # a client that follows the hint leaves by itself
    for c in clients[1:]:
        assert await closed_with(c, timeout=10) == CloseCode.SHUTDOWN
    assert edge.proc.wait(10) == 0


async def test_before_nats_is_reached_an_event_subscription_is_refused_as_retryable_then_served(engine, tmp_path):
    """An edge serves before its first NATS connection (so that it can report degraded): a
    subscription that needs the stream then gets 501, which clients retry, never a silent gap."""
    port = free_port()
    server = NatsServer(tmp_path / "nats", port=port)
    edge = EdgeProcess(server.url, tmp_path / "edge", ready=False, EDGE_WS_ENGINE=engine)
    try:
        c = await Client.login(edge.ws_url, token("alice"))
        refused, _ = await c.request("sub", ch="notifications")
        assert refused["op"] == "err" and refused["code"] == ErrorCode.UNAVAILABLE and "retry" in refused["reason"]
        server.start()
        nc = await nats.connect(server.url)
        await streams.ensure(nc.jetstream())

        async def subscribed() -> bool:
            reply, _ = await c.request("sub", ch="notifications")
            return reply["op"] == "ok"

        await eventually(subscribed, timeout=20, interval=0.5)
        await nc.jetstream().publish(user_subject(Kind.NOTIFICATIONS, "alice"), b'{"text": "hello"}')
        [m] = await c.messages(1, timeout=10)
        assert m["ch"] == "notifications" and m["data"] == {"text": "hello"}
        await nc.close()
    finally:
        edge.stop()
        server.stop()
    assert "ReplayIncomplete not connected to NATS yet" in edge.output()
