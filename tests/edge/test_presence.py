"""Presence through real edges on one real nats-server: snapshot then versioned deltas, tabs
counted once, a SIGKILLed edge's members gone within the documented bound, reconnects within
the grace period without flicker, permissions and limits."""

from __future__ import annotations

import signal
import time

import pytest

from tests.support.timing import t
from tests.support.tokens import token
from tests.support.wsclient import Client

HEARTBEAT = 1.0
FAST = dict(
    EDGE_PRESENCE_HEARTBEAT_S=str(HEARTBEAT),
    EDGE_PRESENCE_GRACE_S="2",
    EDGE_PRESENCE_FLUSH_MS="50",
    EDGE_DRAIN_DEADLINE_S="1",
    EDGE_DRAIN_SPREAD_MS="100",
)
TOPIC = "symbol.AAPL"
CH = f"presence:{TOPIC}"


class Watcher:
    """A client watching one presence channel: applies snapshot and deltas, checks that every
    delta's seq is the previous one plus one, and keeps every frame it saw."""

    def __init__(self, client: Client, ch: str = CH) -> None:
        self.client, self.ch = client, ch
        self.members: dict[str, dict] = {}
        self.count = 0
        self.seq: int | None = None
        self.frames: list[dict] = []

    @classmethod
    async def start(cls, client: Client, ch: str = CH) -> Watcher:
        w = cls(client, ch)
        reply, _ = await client.request("sub", ch=ch)
        assert reply["op"] == "ok", reply
        return w

    def _apply(self, frame: dict) -> None:
        data = frame["data"]
        self.frames.append(data)
        if data["type"] == "snapshot":
            self.members = {m["user"]: m for m in data["members"]}
        else:
            assert frame["seq"] == self.seq + 1, (frame["seq"], self.seq)
            for user in data.get("leaves", []):
                del self.members[user]
            for m in data.get("joins", []) + data.get("updates", []):
                self.members[m["user"]] = m
        self.seq, self.count = frame["seq"], data["count"]

    async def until(self, check, timeout: float = 10) -> None:
        deadline = time.monotonic() + t(timeout)
        while not check(self):
            left = deadline - time.monotonic()
            assert left > 0, f"presence is {self.members} (count {self.count})"
            frame = await self.client.recv(left / t(1))
            if frame.get("op") == "msg" and frame.get("ch") == self.ch:
                self._apply(frame)

    def conns(self) -> dict[str, int]:
        return {u: m["conns"] for u, m in self.members.items()}


async def login(edge, user: str, **kw) -> Client:
    return await Client.login(edge.ws_url, token(user, **kw))


async def test_snapshot_then_join_and_leave_deltas_across_two_edges(edge_factory):
    a, b = edge_factory(**FAST), edge_factory(**FAST)
    alice = await login(a, "alice", name="Alice Martin")
    reply, _ = await alice.request("join", topic=TOPIC, data={"viewing": "chart"})
    assert reply["op"] == "ok" and "updated" not in reply
    carol = await login(b, "carol")
    watcher = await Watcher.start(carol)
    await watcher.until(lambda w: "alice" in w.members)  # the snapshot, or the first delta
    assert watcher.members["alice"]["name"] == "Alice Martin"
    assert watcher.members["alice"]["data"] == {"viewing": "chart"}
    assert set(watcher.members["alice"]) == {"user", "name", "conns", "data", "since"}  # no token, no ids
    bob = await login(a, "bob")
    await bob.request("join", topic=TOPIC)
    await watcher.until(lambda w: set(w.members) == {"alice", "bob"})
    reply, _ = await alice.request("join", topic=TOPIC, data={"viewing": "order ticket"})
    assert reply.get("updated") is True
    await watcher.until(lambda w: w.members["alice"].get("data") == {"viewing": "order ticket"})
    reply, _ = await bob.request("leave", topic=TOPIC)
    assert reply["op"] == "ok"
    await watcher.until(lambda w: set(w.members) == {"alice"})
    assert watcher.frames[-1]["leaves"] == ["bob"]
    reply, _ = await bob.request("leave", topic=TOPIC)
    assert reply["code"] == 205
    for c in (alice, bob, carol):
        await c.close()


@pytest.mark.engines("direct")
async def test_a_user_with_several_tabs_on_several_edges_counts_once(edge_factory):
    a, b = edge_factory(**FAST), edge_factory(**FAST)
    watcher = await Watcher.start(await login(a, "carol"))
    tabs = [await login(a, "bob"), await login(a, "bob"), await login(b, "bob")]
    for tab in tabs:
        assert (await tab.request("join", topic=TOPIC))[0]["op"] == "ok"
    await watcher.until(lambda w: w.conns() == {"bob": 3})
    assert watcher.count == 1
    await tabs[0].request("leave", topic=TOPIC)
    await watcher.until(lambda w: w.conns() == {"bob": 2})
    assert all("leaves" not in f for f in watcher.frames)


@pytest.mark.engines("direct")
async def test_a_sigkilled_edge_loses_its_members_within_two_heartbeats(edge_factory):
    a, doomed = edge_factory(**FAST), edge_factory(**FAST)
    watcher = await Watcher.start(await login(a, "carol"))
    bob = await login(doomed, "bob")
    await bob.request("join", topic=TOPIC)
    await watcher.until(lambda w: "bob" in w.members)
    killed = time.monotonic()
    doomed.stop(signal.SIGKILL)
    # PROTOCOL.md: at most 2 x EDGE_PRESENCE_HEARTBEAT_S after the edge died, plus a flush.
    await watcher.until(lambda w: "bob" not in w.members, timeout=2 * HEARTBEAT + 1.5)
    assert time.monotonic() - killed <= t(2 * HEARTBEAT + 1.5)


@pytest.mark.engines("direct")
async def test_a_reconnect_through_another_edge_within_the_grace_period_does_not_flicker(edge_factory):
    a, b = edge_factory(**FAST), edge_factory(**FAST)
    watcher = await Watcher.start(await login(a, "carol"))
    first = await login(a, "bob")
    await first.request("join", topic=TOPIC)
    await watcher.until(lambda w: w.conns() == {"bob": 1})
    seen = len(watcher.frames)
    await first.close()  # the tab reloads, and lands on the other edge
    second = await login(b, "bob")
    await second.request("join", topic=TOPIC)
    # The old membership ends after the grace period: bob is then counted once, through b.
    await watcher.until(lambda w: w.conns() == {"bob": 1} and any(f.get("updates") for f in w.frames[seen:]))
    assert all("leaves" not in f and "joins" not in f for f in watcher.frames[seen:]), watcher.frames
    await second.close()
    await watcher.until(lambda w: w.members == {})  # a tab that stays closed leaves after the grace


@pytest.mark.engines("direct")
async def test_permissions_deny_by_default(edge_factory):
    a = edge_factory(**FAST)
    fx_only = await login(a, "dave", ent=("fx",))
    for op, fields in (("sub", {"ch": CH}), ("join", {"topic": TOPIC})):
        reply, _ = await fx_only.request(op, **fields)
        assert reply["code"] == 302, reply
    reply, _ = await fx_only.request("sub", ch="presence:symbol.NOPE")
    assert reply["code"] == 201
    for bad in ("symbol.aapl", "desk.sales", "user.bob", "watchlist.short"):
        assert (await fx_only.request("join", topic=bad))[0]["code"] == 200
    assert (await fx_only.request("join"))[0]["code"] == 102
    # The support desk: every user may see who is there, only support staff may be there.
    user = await login(a, "erin")
    assert (await user.request("sub", ch="presence:desk.support"))[0]["op"] == "ok"
    assert (await user.request("join", topic="desk.support"))[0]["code"] == 301
    staff = await login(a, "support1", roles=("support",), name="Sam Support")
    assert (await staff.request("join", topic="desk.support"))[0]["op"] == "ok"
    watcher = Watcher(user, "presence:desk.support")
    watcher.seq = 0
    await watcher.until(lambda w: "support1" in w.members)
    # Presence data is small: at most 256 bytes of JSON.
    reply, _ = await user.request("join", topic=TOPIC, data={"x": "y" * 300})
    assert reply["code"] == 102 and "256" in reply["reason"]
    reply, _ = await user.request("sub", ch=CH, since={"epoch": "1", "seq": 1})
    assert reply["code"] == 102


@pytest.mark.engines("direct")
async def test_limits_on_topics_joins_and_listed_members(edge_factory):
    a = edge_factory(
        EDGE_PRESENCE_MAX_TOPICS="2",
        EDGE_PRESENCE_RATE="1",
        EDGE_PRESENCE_BURST="3",
        EDGE_PRESENCE_LIST_LIMIT="2",
        **FAST,
    )
    bob = await login(a, "bob")
    assert bob.welcome["limits"]["max_topics"] == 2
    assert (await bob.request("join", topic="symbol.AAPL"))[0]["op"] == "ok"
    assert (await bob.request("join", topic="symbol.MSFT"))[0]["op"] == "ok"
    reply, _ = await bob.request("join", topic="symbol.NVDA")
    assert reply["code"] == 206
    assert (await bob.request("join", topic="symbol.MSFT", data={"n": 1}))[0].get("updated") is True
    reply, _ = await bob.request("join", topic="symbol.MSFT", data={"n": 2})  # the 4th in a burst of 3
    assert reply["code"] == 400 and "retry in" in reply["reason"]
    others = [await login(a, u) for u in ("u1", "u2")]
    for other in others:
        await other.request("join", topic=TOPIC)
    watcher = await Watcher.start(await login(a, "carol"))
    await watcher.until(lambda w: w.count == 3)
    assert len(watcher.members) == 2 and watcher.frames[-1]["limit"] == 2  # counts, plus the first 2
