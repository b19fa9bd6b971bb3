"""Failover on a real 3-node NATS cluster with two real edges, publishing the whole time.

Each test has a publisher storing numbered notifications for several users (on TM_USER_EVENTS,
the stream that stores trades too) and one client per user, spread over both edges, that follows
its ``notifications`` across edges and counts gaps and duplicates by position. The faults: the
node leading that stream SIGKILLed (with orders in flight), a rolling restart of both edges, an
edge SIGKILLed, a node down for 30 s. Measured figures are printed at the end of the module
(``-s``) and recorded in ops/FAILOVER.md.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import urllib.request
from decimal import Decimal

import nats
import orjson
import pytest

from tests.cluster.harness import Feed, Orders, check_exactly_once, follow, wait_all_received
from tests.services.conftest import account, publish_tick, seed
from tests.support.timing import t
from tickmesh import streams
from tickmesh.publish import Publisher
from tickmesh.services.common.holdings import account_key, decode_account

STREAM = "TM_USER_EVENTS"
NODE_DOWN_S = float(os.environ.get("TICKMESH_FAILOVER_NODE_DOWN_S", "30"))
FIGURES: dict[str, dict[str, float]] = {}

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    if FIGURES:
        print("\nfailover figures (s):")
        for fault, figures in FIGURES.items():
            print(f"  {fault}: " + ", ".join(f"{k} {v:.2f}" for k, v in figures.items()))


async def until(predicate, timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + t(timeout)
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")
        await asyncio.sleep(0.05)


async def stream_leader(urls: list[str], timeout: float = 30, not_: str | None = None) -> tuple[str, float]:
    """The stream's leader as one of ``urls`` reports it, once it is not ``not_``; and when."""
    nc = await nats.connect(urls, connect_timeout=1, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
    try:
        js = nc.jetstream(timeout=0.5)
        deadline = time.monotonic() + t(timeout)
        while time.monotonic() < deadline:
            try:
                leader = (await js.stream_info(STREAM)).cluster.leader
                if leader and leader != not_:
                    return leader, time.monotonic()
            except Exception:  # no leader yet: the API times out or answers 503
                pass
            await asyncio.sleep(0.05)
        raise AssertionError(f"{STREAM} has no leader after {timeout}s")
    finally:
        await nc.close()


def back_to_ok(followers, since: float) -> float:
    """Seconds from ``since`` until the last client that left ``ok`` got it back (0: none left)."""
    last = since
    for f in followers:
        after = [(when, state) for when, state in f.statuses if when >= since]
        if any(state != "ok" for _, state in after):
            assert after[-1][1] == "ok", f"{f.user} did not get back to ok: {after}"
            last = max(last, after[-1][0])
    return last - since


def longest_latency(followers, feed: Feed, since: float) -> float:
    """The longest time from a publish's start to a client's receipt, for numbers first sent
    after ``since``."""
    return max((lat for f in followers for lat in f.latencies(feed.sent, since)), default=0.0)


def longest_delivery(followers, feed: Feed, since: float) -> float:
    """The longest time from JetStream's acknowledgement to a client's receipt."""
    return max(
        (
            f.received[n] - feed.acked[n]
            for f in followers
            for n in f.received
            if n in feed.acked and feed.sent[n] >= since
        ),
        default=0.0,
    )


def longest_publish(feed: Feed, since: float) -> float:
    return max((feed.acked[n] - feed.sent[n] for n in feed.acked if feed.sent[n] >= since), default=0.0)


@pytest.fixture
async def publisher(stack):
    pub = await Publisher.connect(stack.nats.url)
    yield pub
    await pub.close()


async def test_killing_the_leader_of_the_trades_stream_loses_nothing(stack, publisher):
    users = [f"lead{i}" for i in range(4)]
    nc = await nats.connect(stack.nats.urls)
    await seed(nc, {"lead-orders": account("1000000.00")})
    await publish_tick(nc, "KO", "68.40")
    followers = await follow(users, stack.edge_urls, "lead")
    feed = Feed(publisher, users, "lead").start()
    orders = Orders("lead-orders", lambda: stack.edge_urls()[0], "KO").start()
    await until(lambda: feed.count >= 20 and len(orders.replies) >= 3, what="publishing and orders under way")

    leader, _ = await stream_leader(stack.nats.urls)
    killed = stack.nats.node(leader)
    survivors = [n.url for n in stack.nats.nodes if n is not killed]
    at = time.monotonic()
    stack.nats.kill(killed)
    _, elected = await stream_leader(survivors, not_=leader)
    published_at_kill = feed.count
    await until(
        lambda: feed.count >= published_at_kill + 60 and orders.done_after(elected) >= 3,
        timeout=60,
        what="publishing and orders after the election",
    )
    await orders.stop()
    count = await feed.stop()
    await wait_all_received(followers, count)
    for f in followers:
        await f.stop()

    check_exactly_once(followers, count)
    for f in followers:
        assert not f.ends and f.reconnect_frames == 0, f"{f.user} lost its connection: {f.ends}"
        assert {state for _, state in f.statuses} <= {"ok", "degraded"}, f.statuses
    assert not orders.errors, orders.errors
    assert set(orders.replies) == set(orders.keys)
    assert all(r["status"] == "filled" for r in orders.replies.values()), orders.replies
    assert len({r["order_id"] for r in orders.replies.values()}) == len(orders.keys)
    kv = await nc.jetstream().key_value(streams.HOLDINGS_BUCKET)
    held = decode_account((await kv.get(account_key("lead-orders"))).value).positions["KO"].quantity
    assert held == Decimal(len(orders.keys)), "every order filled exactly once, retries included"
    await nc.close()

    FIGURES["stream leader SIGKILLed"] = {
        "leader election": elected - at,
        "longest client latency": longest_latency(followers, feed, at - 1),
        "longest publish (until stored)": longest_publish(feed, at - 1),
        "longest delivery after storing": longest_delivery(followers, feed, at - 1),
        "every client back to ok": back_to_ok(followers, at),
        "longest order (submit to filled, retries included)": max(b - a for a, b in orders.took.values()),
        "orders retried": float(sum(orders.retried.values())),
    }
    await asyncio.to_thread(killed.start)
    await asyncio.to_thread(stack.nats.wait_healthy)


async def test_a_rolling_restart_of_the_edges_loses_and_repeats_nothing(stack, publisher):
    users = [f"roll{i}" for i in range(6)]
    followers = await follow(users, stack.edge_urls, "roll")
    feed = Feed(publisher, users, "roll").start()
    await until(lambda: feed.count >= 10, what="publishing")
    at = time.monotonic()
    for index in range(len(stack.edges)):
        # SIGTERM drains (reconnect frames spread over 0.5 s, then exit); the clients follow them
        # meanwhile (the process calls run in threads, so the event loop keeps serving them).
        await asyncio.to_thread(stack.edges[index].stop, signal.SIGTERM, 15)
        await asyncio.to_thread(stack.replace_edge, index)
    await until(
        lambda: all(len(f.sessions) >= 2 for f in followers),
        what=lambda: f"every client on a new session: {[(f.user, f.sessions, f.ends, f.failure) for f in followers]}",
    )
    done_at = time.monotonic()
    mark = feed.count
    await until(lambda: feed.count >= mark + 20, what="publishing after the restart")
    count = await feed.stop()
    await wait_all_received(followers, count)
    for f in followers:
        await f.stop()

    check_exactly_once(followers, count)
    for f in followers:
        assert f.reconnect_frames >= 1, f"{f.user} was never asked to move: {f.ends}"
    FIGURES["rolling restart of 2 edges"] = {
        "restart of both": done_at - at,
        "longest client latency": longest_latency(followers, feed, at),
    }


async def test_an_edge_killed_hands_its_clients_to_the_other_without_gap(stack, publisher):
    users = [f"kill{i}" for i in range(6)]
    followers = await follow(users, stack.edge_urls, "kill")
    feed = Feed(publisher, users, "kill").start()
    await until(lambda: feed.count >= 10, what="publishing")
    victims = [f for f in followers if f.sessions[-1] == 0]
    assert victims
    at = time.monotonic()
    stack.edges[0].stop(signal.SIGKILL)
    await until(lambda: all(len(f.sessions) >= 2 for f in victims), what="the killed edge's clients elsewhere")
    moved = max(f.ends[-1][0] for f in victims) if all(f.ends for f in victims) else time.monotonic()
    resumed = time.monotonic()
    mark = feed.count
    await until(lambda: feed.count >= mark + 20, what="publishing after the move")
    count = await feed.stop()
    await wait_all_received(followers, count)
    for f in followers:
        await f.stop()
    await asyncio.to_thread(stack.replace_edge, 0)

    check_exactly_once(followers, count)
    assert all(f.sessions[-1] == 1 for f in victims), "they resumed on the other edge"
    FIGURES["edge SIGKILLed"] = {
        "clients resumed on the other edge": resumed - at,
        "connection loss noticed": moved - at,
        "longest client latency": longest_latency(followers, feed, at),
    }


def node_stream_state(node, stream: str) -> tuple[int, int] | None:
    """(messages, last_seq) of ``stream`` in ``node``'s own replica (its monitoring /jsz)."""
    url = f"http://127.0.0.1:{node.monitor_port}/jsz?streams=true"
    with urllib.request.urlopen(url, timeout=2) as resp:
        jsz = orjson.loads(resp.read())
    for acct in jsz.get("account_details", []):
        for s in acct.get("stream_detail", []):
            if s["name"] == stream:
                return s["state"]["messages"], s["state"]["last_seq"]
    return None


async def test_a_node_down_for_30_s_catches_up_and_nothing_is_lost(stack, publisher):
    users = [f"down{i}" for i in range(4)]
    followers = await follow(users, stack.edge_urls, "down")
    feed = Feed(publisher, users, "down").start()
    await until(lambda: feed.count >= 10, what="publishing")
    leader, _ = await stream_leader(stack.nats.urls)
    node = next(n for n in stack.nats.nodes if n.name != leader)  # a follower replica
    at = time.monotonic()
    await asyncio.to_thread(node.stop)
    await asyncio.sleep(NODE_DOWN_S)
    published_while_down = feed.count
    await asyncio.to_thread(node.start)
    back = time.monotonic()
    await asyncio.to_thread(stack.nats.wait_healthy, [node], 60)  # /healthz: its streams are current again
    caught_up = time.monotonic()
    mark = feed.count
    await until(lambda: feed.count >= mark + 20, what="publishing after the node's return")
    count = await feed.stop()
    await wait_all_received(followers, count)
    for f in followers:
        await f.stop()

    check_exactly_once(followers, count)
    # The returned node's own replica holds what the leader holds: everything published while
    # it was down was replicated to it.
    nc = await nats.connect(stack.nats.urls)
    info = await nc.jetstream().stream_info(STREAM)
    await nc.close()
    await until(
        lambda: node_stream_state(node, STREAM) == (info.state.messages, info.state.last_seq),
        timeout=30,
        what="the returned node's replica to match the leader's",
    )
    assert published_while_down > 0
    FIGURES[f"node down {NODE_DOWN_S:.0f} s"] = {
        "catch-up after restart": caught_up - back,
        "longest client latency": longest_latency(followers, feed, at),
        "every client back to ok": back_to_ok(followers, at),
    }
