"""Presence over a real nats-server: two "edges" (stores on their own connections) share members
through the KV bucket; a SIGKILLed process's members leave within the documented bound."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import nats
import orjson
import pytest

from tests.support.timing import t
from tickmesh.presence.directory import Directory
from tickmesh.presence.local import LocalPresence
from tickmesh.presence.records import edge_filter, member_key
from tickmesh.presence.store import PresenceStore

T = "symbol.AAPL"
HEARTBEAT = 1.0  # seconds: the lease lives 2 s


class Edge:
    """One store, as an edge holds it, recording every delta it fans out."""

    def __init__(self, nc, edge: str, *, grace: float = 2.0) -> None:
        self.nc = nc
        self.local = LocalPresence(edge, grace=grace)
        self.directory = Directory(limit=100, flush_interval=0.05)
        self.deltas: list[dict] = []
        self.changed = asyncio.Event()
        self.store = PresenceStore(
            nc.jetstream(),
            edge=edge,
            local=self.local,
            directory=self.directory,
            heartbeat=HEARTBEAT,
            on_delta=self._on_delta,
        )

    def _on_delta(self, delta) -> None:
        self.deltas.append({"v": delta.version, **orjson.loads(delta.payload)})
        self.changed.set()

    def members(self, topic: str = T) -> dict[str, int]:
        roster = self.directory.rosters[topic]
        return {u: roster.member(u)["conns"] for u in roster.listed()}

    async def until(self, check, timeout: float = 5.0, topic: str = T) -> None:
        deadline = asyncio.get_running_loop().time() + t(timeout)
        while not check(self.members(topic)):
            self.changed.clear()
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"members are {self.members(topic)}")
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except TimeoutError:
                pass

    def join(self, conn: str, user: str, topic: str = T, data=None) -> None:
        self.local.join(conn, user, user.title(), topic, data, time.time_ns() // 1000)
        self.store.changed()


@pytest.fixture
async def edges(nats_server):
    made: list[Edge] = []
    conns = []

    async def make(name: str, **kw) -> Edge:
        nc = await nats.connect(nats_server.url)
        conns.append(nc)
        edge = Edge(nc, name, **kw)
        await edge.store.start()
        made.append(edge)
        return edge

    yield make
    for edge in made:
        await edge.store.stop()
    for nc in conns:
        await nc.close()


async def test_members_joined_on_one_edge_are_seen_with_snapshot_then_deltas_on_another(edges):
    a, b = await edges("edge-a"), await edges("edge-b")
    a.join("c1", "alice", data={"viewing": "chart"})
    await asyncio.sleep(0.2)
    await b.store.watch(T)  # a subscriber arrives on edge b: the snapshot has alice
    snap = orjson.loads(b.directory.rosters[T].snapshot()[1])
    assert [m["user"] for m in snap["members"]] == ["alice"]
    assert snap["members"][0]["data"] == {"viewing": "chart"}
    version = b.directory.rosters[T].version
    a.join("c2", "bob")
    await b.until(lambda m: m == {"alice": 1, "bob": 1})
    assert b.deltas[-1]["v"] == version + 1 and [j["user"] for j in b.deltas[-1]["joins"]] == ["bob"]
    a.local.leave("c1", T)
    a.store.changed()
    await b.until(lambda m: m == {"bob": 1})
    assert b.deltas[-1]["leaves"] == ["alice"] and b.deltas[-1]["v"] == version + 2


async def test_a_user_on_two_edges_counts_once_with_both_connections(edges):
    a, b = await edges("edge-a"), await edges("edge-b")
    await a.store.watch(T)
    await b.store.watch(T)
    a.join("c1", "carol")
    a.join("c2", "carol")
    b.join("c3", "carol")
    await a.until(lambda m: m == {"carol": 3})
    await b.until(lambda m: m == {"carol": 3})
    assert a.directory.rosters[T].count == 1


async def test_a_drained_edge_keeps_its_members_for_the_grace_period_only(edges):
    a, b = await edges("edge-a"), await edges("edge-b")
    await b.store.watch(T)
    a.join("c1", "dave")
    await b.until(lambda m: m == {"dave": 1})
    b.join("c9", "dave")  # dave reconnects through b while a drains
    await a.store.stop(grace=1.0)
    await b.until(lambda m: m == {"dave": 1}, timeout=6.0)
    assert all("leaves" not in d for d in b.deltas)  # never a leave: no flicker


async def test_a_sigkilled_edge_loses_its_members_within_two_heartbeats_and_is_purged(edges, nats_server):
    b = await edges("edge-b")
    await b.store.watch(T)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.presence.member_proc",
            nats_server.url,
            "edge-k",
            str(HEARTBEAT),
            T,
            "erin",
            "frank",
        ],
        stdout=subprocess.PIPE,
        cwd=os.getcwd(),
    )
    try:
        assert proc.stdout.readline().strip() == b"ready"
        await b.until(lambda m: m == {"erin": 1, "frank": 1})
        killed = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)
        # The documented bound: 2 heartbeats after the last renewal, plus a flush interval.
        await b.until(lambda m: m == {}, timeout=2 * HEARTBEAT + 1.5)
        assert time.monotonic() - killed <= t(2 * HEARTBEAT + 1.5)
        assert b.deltas[-1]["leaves"] == ["erin", "frank"]  # one delta for both
        kv = await b.nc.jetstream().key_value("tm_presence")
        deadline = time.monotonic() + t(5)
        while await b.store._keys(edge_filter("edge-k")):
            assert time.monotonic() < deadline, "the dead edge's records were not purged"
            await asyncio.sleep(0.1)
        assert kv is not None
    finally:
        proc.kill()
        proc.wait()


async def test_records_left_by_an_edge_without_lease_are_swept_at_start(edges, nats_server):
    nc = await nats.connect(nats_server.url)
    try:
        from tickmesh.presence.store import ensure_bucket

        kv = await ensure_bucket(nc.jetstream())
        await kv.put(
            member_key("edge-old", T, "ghost"), b'{"name":"G","conns":1,"since":1795630000000000,"at":1795630000000000}'
        )
    finally:
        await nc.close()
    b = await edges("edge-b")
    await b.store.watch(T)
    assert b.members() == {}  # never shown: its edge has no lease
    deadline = time.monotonic() + t(5)
    while await b.store._keys(edge_filter("edge-old")):
        assert time.monotonic() < deadline, "the ghost record was not swept"
        await asyncio.sleep(0.1)
