"""portfolio-valuer sharding: who values which shard (the sans-I/O core), and a shard's failover
between real valuer processes through their leases in NATS KV."""

from __future__ import annotations

import asyncio
import signal
import sys
import time

import orjson

from tests.services.conftest import account, seed
from tests.support.procs import Proc, base_env
from tests.support.timing import t
from tickmesh.services.portfolio_valuer.leases import BUCKET
from tickmesh.services.portfolio_valuer.shards import assignment, plan, shard_of


# --- the core -------------------------------------------------------------------------------------
def test_home_instances_value_their_own_shard():
    members = {"b": 1, "a": 0, "c": 2}
    assert assignment(3, members) == {0: "a", 1: "b", 2: "c"}
    assert assignment(3, {}) == {}
    both = assignment(2, {"x": 0, "w": 0})
    assert both[0] == "w" and both[1] in ("w", "x"), "two claiming one home: the smallest id has it"


def test_a_lost_instances_shards_spread_over_the_others_and_stay_put():
    members = {f"v{i}": i for i in range(8)}
    del members["v3"]
    orphan_owner = assignment(8, members)[3]
    assert orphan_owner in members
    # Many lost at once spread rather than pile onto one survivor.
    few = {"v0": 0, "v1": 1, "v2": 2}
    owners = [assignment(24, few)[s] for s in range(3, 24)]
    assert len(set(owners)) == 3
    # An unrelated member leaving does not move an orphan whose owner stays.
    survivors = {m: h for m, h in members.items() if m not in ("v5", orphan_owner)}
    survivors[orphan_owner] = members[orphan_owner]
    assert assignment(8, survivors)[3] == orphan_owner
    # Same answer whatever the order the members were seen in.
    assert assignment(8, dict(reversed(list(members.items())))) == assignment(8, members)


def test_plan_takes_only_free_shards_and_gives_back_what_is_anothers():
    members = {"a": 0, "b": 1}
    assert plan("a", 2, {"a": 0}, {}, frozenset()) == ([0, 1], [])
    assert plan("a", 2, {"a": 0}, {1: "b"}, frozenset({0})) == ([], []), "b's lease has not lapsed yet"
    assert plan("a", 2, members, {0: "a", 1: "a"}, frozenset({0, 1})) == ([], [1]), "b is back home"
    assert plan("b", 2, members, {0: "a", 1: "a"}, frozenset()) == ([], []), "b waits for a to let go"
    assert plan("b", 2, members, {0: "a"}, frozenset()) == ([1], [])
    assert plan("a", 2, {"a": 0}, {}, frozenset(), adopt=False) == ([0], []), "just started: home only"


def test_shards_split_users_evenly():
    users = [f"user-{i}" for i in range(10_000)]
    counts = [0, 0]
    for u in users:
        counts[shard_of(u, 2)] += 1
    assert abs(counts[0] - counts[1]) < 400


# --- failover between real processes ----------------------------------------------------------------
TTL = 2


def start_valuer(url: str, home: int, tmp_path, tag: str) -> Proc:
    return Proc(
        [sys.executable, "-m", "tickmesh", "service", "portfolio-valuer"],
        base_env(NATS_URL=url, VALUER_SHARDS="2", VALUER_SHARD=str(home), VALUER_LEASE_TTL_S=str(TTL)),
        tmp_path / f"valuer-{tag}.log",
    )


async def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + t(timeout)
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")
        await asyncio.sleep(0.02)


async def holders(nc) -> dict[int, str]:
    kv = await nc.jetstream().key_value(BUCKET)
    out = {}
    for shard in (0, 1):
        try:
            out[shard] = (await kv.get(f"s.2.{shard}")).value.decode()
        except Exception:  # no holder
            pass
    return out


async def test_a_lost_valuers_users_move_to_the_other_within_the_lease_ttl(nc, nats_server, tmp_path):
    users = [f"sh{i}" for i in range(40)]
    await seed(nc, {u: account("1000.00", {"AAPL": ("2", "180.00")}) for u in users})
    by_shard = {s: {u for u in users if shard_of(u, 2) == s} for s in (0, 1)}
    assert by_shard[0] and by_shard[1]
    arrivals: dict[str, list[float]] = {u: [] for u in users}

    async def on_portfolio(msg) -> None:
        arrivals[orjson.loads(msg.data)["user"]].append(time.monotonic())

    await nc.subscribe("tm.user.*.portfolio", cb=on_portfolio)
    a = start_valuer(nats_server.url, 0, tmp_path, "a")
    b = start_valuer(nats_server.url, 1, tmp_path, "b")
    b2 = None
    try:
        await wait_for(lambda: all(arrivals[u] for u in users), 20, "every user's first portfolio")
        owners = await holders(nc)
        assert owners[0] != owners[1], owners

        killed_at = time.monotonic()
        b.stop(signal.SIGKILL)
        await wait_for(
            lambda: all(arrivals[u][-1] > killed_at for u in by_shard[1]),
            TTL + 5,
            lambda: f"shard 1's users valued by the survivor; holders {owners}; a's log:\n{a.output()[-3000:]}",
        )
        moved = max(arrivals[u][-1] for u in by_shard[1]) - killed_at
        assert (await holders(nc)) == {0: owners[0], 1: owners[0]}
        print(f"\nvaluer shard failover after SIGKILL: {moved:.2f} s (lease TTL {TTL} s)")

        # The home instance returns and takes its shard back; a clean stop hands over at once.
        b2 = start_valuer(nats_server.url, 1, tmp_path, "b2")
        await wait_for(lambda: "valuer.shard_taken" in b2.output(), 20, "the returning instance to take its shard back")
        back = await holders(nc)
        assert back[0] == owners[0] and back[1] not in (owners[0], owners[1])
        assert "valuer.shard_released" in a.output()
        await asyncio.sleep(TTL)  # b2 past its start-up wait: it may now take shards other than its home
        stopped_at = time.monotonic()
        assert a.stop(signal.SIGTERM) == 0
        await wait_for(
            lambda: all(arrivals[u][-1] > stopped_at for u in by_shard[0]),
            5,
            "shard 0's users valued by b2 after a's clean stop",
        )
        handed = max(arrivals[u][-1] for u in by_shard[0]) - stopped_at
        print(f"valuer shard handover after SIGTERM: {handed:.2f} s")
        assert (await holders(nc)) == {0: back[1], 1: back[1]}
    finally:
        for proc in (a, b, b2):
            if proc is not None:
                proc.stop(signal.SIGKILL)
