"""The `flags` channel end to end: real edges, real NATS, real WebSocket clients.

Propagation time (store write -> frame at the client) is measured and printed (run with -s to
see it), never asserted: the tests wait for the frames they expect.
"""

import asyncio
import json
import time

import nats
import orjson
import pytest

from tests.support.timing import eventually
from tests.support.tokens import token
from tests.support.wsclient import Client
from tickmesh import streams
from tickmesh.flags import FlagStore, bucket
from tickmesh.services.flags.service import serve as serve_flags
from tickmesh.services.flags.settings import FlagServiceSettings


@pytest.fixture
async def store(nats_mon):
    nc = await nats.connect(nats_mon.url)
    await streams.ensure(nc.jetstream())
    try:
        yield await FlagStore.open(nc)
    finally:
        await nc.close()


async def flags_msg(client: Client, timeout: float = 10) -> dict:
    while True:
        frame = await client.recv(timeout)
        if frame.get("op") == "msg" and frame.get("ch") == "flags":
            return frame


async def subscribe_flags(url: str, user: str, **kw) -> tuple[Client, dict]:
    client = await Client.login(url, token(user, **kw))
    reply, _ = await client.request("sub", ch="flags")
    assert reply["op"] == "ok", reply
    return client, await flags_msg(client)


def values(frame: dict) -> dict:
    return {name: v["value"] for name, v in frame["data"]["flags"].items()}


async def test_a_change_reaches_subscribers_on_two_edges_and_never_leaks_rules(edge_factory, store):
    await store.change({"name": "ws.msgpack", "action": "create", "type": "boolean"}, by="ops", via="api")
    a, b = edge_factory(), edge_factory()
    alice, first = await subscribe_flags(a.ws_url, "alice")
    bob, _ = await subscribe_flags(b.ws_url, "bob")
    carol, _ = await subscribe_flags(b.ws_url, "carol", roles=("user", "admin"))
    assert first["data"]["flags"] == {"ws.msgpack": {"value": False, "variant": "off", "reason": "default"}}

    started = time.perf_counter()
    await store.change({"name": "ws.msgpack", "action": "add_rule", "users": ["alice", "bob"]}, by="ops", via="api")
    got_a = await flags_msg(alice)
    took_a = time.perf_counter() - started
    got_b = await flags_msg(bob)
    took_b = time.perf_counter() - started
    print(f"\nflag propagation (store write -> frame): edge A {took_a * 1000:.1f} ms, edge B {took_b * 1000:.1f} ms")
    assert values(got_a) == values(got_b) == {"ws.msgpack": True}
    assert got_a["seq"] == got_b["seq"] > first["seq"]  # one version on every edge
    for frame in (got_a, got_b):
        raw = json.dumps(frame)
        assert "users" not in raw and "rules" not in raw and "percent" not in raw
    assert "bob" not in json.dumps(got_a) and "alice" not in json.dumps(got_b)

    # carol's value did not change: she gets nothing for that change, only for the next one.
    await store.change({"name": "ws.msgpack", "action": "add_rule", "roles": ["admin"]}, by="ops", via="api")
    nxt = await flags_msg(carol)
    assert values(nxt) == {"ws.msgpack": True} and nxt["seq"] > got_b["seq"]
    for c in (alice, bob, carol):
        await c.close()


async def test_rollout_moves_exactly_the_right_users_and_the_kill_switch_reaches_everyone(edge_factory, store):
    await store.change({"name": "realtime.presence", "action": "create", "type": "boolean"}, by="ops", via="api")
    await store.change({"name": "other", "action": "create", "type": "string", "value": "a"}, by="ops", via="api")
    edges = [edge_factory(), edge_factory()]
    users = [f"user{i:02d}" for i in range(24)]
    clients = {}
    for i, user in enumerate(users):
        clients[user], snap = await subscribe_flags(edges[i % 2].ws_url, user)
        assert values(snap)["realtime.presence"] is False
    current = {u: False for u in users}
    for percent in (10, 50, 100):
        await store.change(
            {"name": "realtime.presence", "action": "rollout", "percent": str(percent)}, by="ops", via="api"
        )
        # A change every user sees follows, so each client's next frame is either the rollout
        # (its value changed) or this marker (it did not): nobody gets a frame for nothing.
        await store.change({"name": "other", "action": "set", "value": f"p{percent}"}, by="ops", via="api")
        for user in users:
            expected = bucket("realtime.presence", user) < percent * 100
            frame = await flags_msg(clients[user])
            if values(frame)["other"] != f"p{percent}":
                # A frame before the marker: only a user whose value changed may get one.
                assert expected != current[user] and values(frame)["realtime.presence"] is expected, (user, percent)
                frame = await flags_msg(clients[user])
            assert values(frame) == {"realtime.presence": expected, "other": f"p{percent}"}, (user, percent)
            current[user] = expected
    assert all(current.values())
    started = time.perf_counter()
    await store.change({"name": "realtime.presence", "action": "kill"}, by="ops", via="api")
    for user in users:
        frame = await flags_msg(clients[user])
        assert frame["data"]["flags"]["realtime.presence"] == {"value": False, "variant": "off", "reason": "disabled"}
    print(f"\nkill switch reached {len(users)} clients on 2 edges in {(time.perf_counter() - started) * 1000:.1f} ms")
    for c in clients.values():
        await c.close()


async def test_flags_is_always_the_callers_own(edge):
    client = await Client.login(edge.ws_url, token("alice"))
    reply, _ = await client.request("sub", ch="flags:bob")
    assert reply["op"] == "err" and reply["code"] == 200
    reply, _ = await client.request("sub", ch="flags", history=5)
    assert reply["op"] == "err" and reply["code"] == 102
    await client.close()


async def test_the_admin_command_changes_flags_over_the_edge(edge, nats_mon):
    nc = await nats.connect(nats_mon.url)
    stop = asyncio.Event()
    task = asyncio.ensure_future(serve_flags(FlagServiceSettings(), nc, stop))
    try:
        admin = await Client.login(edge.ws_url, token("root", roles=("admin",)))
        user = await Client.login(edge.ws_url, token("mallory"))
        reply, _ = await user.request("cmd", name="flag.list", data={})
        assert reply["op"] == "err" and reply["code"] == 301

        async def service_answers() -> bool:  # the service subscribes in the background task
            reply, _ = await admin.request("cmd", name="flag.list", data={})
            return reply["op"] == "ok"

        await eventually(service_answers, timeout=10, interval=0.1)
        reply, _ = await admin.request(
            "cmd",
            name="flag.update",
            timeout=10,
            data={"name": "beta", "action": "create", "type": "boolean", "value": True},
        )
        assert reply["op"] == "ok" and reply["data"]["flag"]["updated_by"] == "root", reply
        reply, _ = await user.request("sub", ch="flags")
        assert values(await flags_msg(user)) == {"beta": True}
        reply, _ = await admin.request(
            "cmd", name="flag.update", data={"name": "beta", "action": "rollout", "percent": "101"}
        )
        assert reply["op"] == "err" and reply["code"] == 641
        await admin.close()
        await user.close()
    finally:
        stop.set()
        await task
        await nc.close()


async def test_price_history_fills_a_chart_then_live_ticks_follow(edge, nats_mon):
    nc = await nats.connect(nats_mon.url)
    await streams.ensure(nc.jetstream())
    js = nc.jetstream()
    base = 1_795_630_850_000_000

    def tick(i):
        return orjson.dumps(
            {"symbol": "NVDA", "last": f"{100 + i}.00", "ts": base + i, "ingest_ts": base + i, "provider": "synthetic"}
        )

    for i in range(30):
        await js.publish("tm.tick.NVDA", tick(i), headers={"Tm-Seq": str(base + i)})
    client = await Client.login(edge.ws_url, token("alice"))
    reply, _ = await client.request("sub", ch="prices:NVDA", history=20)
    assert reply == {"op": "ok", "id": reply["id"], "replayed": 20}
    got = await client.messages(20)
    assert [m["seq"] for m in got] == [base + i for i in range(10, 30)]
    assert got[-1]["data"]["last"] == "129.00"
    await nc.publish("tm.tick.NVDA", tick(30), headers={"Tm-Seq": str(base + 30)})
    live = await client.messages(1)
    assert live[0]["seq"] == base + 30  # the current value is not sent twice, live follows
    reply, _ = await client.request("sub", ch="prices:AAPL", history=5)
    assert reply["replayed"] == 0  # nothing retained yet: the subscription starts as usual
    reply, _ = await client.request("sub", ch="portfolio", history=5)
    assert reply["op"] == "err" and reply["code"] == 102
    await client.close()
    await nc.close()
