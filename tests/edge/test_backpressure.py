"""Backpressure on the direct engine, asserted on frames: a client that stops reading hurts only
itself, loses no event, and is told to resume once its outbox overflows."""

import asyncio
import json

import nats
import pytest
import websockets

from tests.support.tokens import token
from tests.support.wsclient import Client
from tickmesh.contracts.channels import Kind, user_subject
from tickmesh.contracts.codes import CloseCode

pytestmark = pytest.mark.engines("direct")  # the direct engine's own write path


async def test_a_stalled_reader_loses_no_event_and_the_others_get_everything(edge_factory, nats_mon):
    # The outbox holds a burst (up to 1 MB); the stalled reader's backlog outgrows it.
    edge = edge_factory(EDGE_OUTBOX_MAX_FRAMES="500", EDGE_OUTBOX_MAX_BYTES="1000000", EDGE_WS_HIGH_WATER="16384")
    healthy = await Client.login(edge.ws_url, token("alice"))
    slow = await Client.connect_small_buffers(edge.ws_url)
    await slow.request("auth", token=token("alice"))
    assert (await healthy.request("sub", ch="notifications"))[0]["op"] == "ok"
    ok, _ = await slow.request("sub", ch="notifications")
    epoch = ok["epoch"]
    n = 600
    reading = asyncio.ensure_future(healthy.messages(n, timeout=20))  # the healthy one keeps reading
    nc = await nats.connect(nats_mon.url)
    js = nc.jetstream()
    for start in range(0, n, 25):  # ~10 MB/s: easy for a reader, far too much for one that stalls
        await asyncio.gather(
            *(
                js.publish(user_subject(Kind.NOTIFICATIONS, "alice"), json.dumps({"i": i, "pad": "y" * 8000}).encode())
                for i in range(start, start + 25)
            )
        )
        await asyncio.sleep(0.02)
    await nc.close()

    # The healthy reader gets every event, in order, and stays connected.
    got = [m["data"]["i"] for m in await reading]
    assert got == list(range(n))
    assert (await healthy.request("ping"))[0]["op"] == "pong"

    # The stalled reader, reading again, finds an unbroken prefix and then the 4001 close.
    received, last = [], None
    try:
        while True:
            frame = await slow.recv(timeout=10)
            if frame["op"] == "msg":
                received.append(frame["data"]["i"])
                last = frame["seq"]
    except websockets.ConnectionClosed as closed:
        assert closed.rcvd is not None and closed.rcvd.code == CloseCode.SLOW_CONSUMER
    assert received == list(range(len(received))) and len(received) < n
    # Resuming from its last position on a new connection delivers exactly the rest.
    resumed = await Client.login(edge.ws_url, token("alice"))
    since = {"epoch": epoch, "seq": last if last is not None else ok["seq"]}
    reply, _ = await resumed.request("sub", ch="notifications", since=since)
    assert reply["op"] == "ok" and reply["recovered"] is True
    rest = [m["data"]["i"] for m in await resumed.messages(n - len(received), timeout=20)]
    assert received + rest == list(range(n))
    for c in (healthy, resumed):
        await c.close()
