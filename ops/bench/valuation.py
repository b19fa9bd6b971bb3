"""Throughput of portfolio-valuer: its core in one process, or real sharded valuers over NATS.

Core: ``.venv/bin/python -m tickmesh.ops.bench.valuation [--users 10000] [--symbols 20] [--ticks 2000]``

Builds the state (every user holds K random symbols of the listed instruments), then applies a
random walk of ticks through :meth:`Valuer.on_price` and marks the changed users in the publish
throttle, as the service does per tick. Prints ticks/s and holder updates/s. Building portfolio
messages is measured separately (it is bounded by ``VALUER_MAX_HZ`` per user, not per tick).

Sharded: ``... valuation --shards 2 [--rate 500] [--seconds 20]`` starts a nats-server, stores
the N accounts in the holdings bucket, runs ``--shards`` real ``tickmesh service
portfolio-valuer`` processes (one per shard), publishes ticks at ``--rate`` per second (a random
walk over the instruments, as market-feed publishes them), and reads each valuer's own counters
(``/metrics``: ticks in, portfolios out) and CPU (``/proc``) over the measured window. Prints
per shard and in total: ticks/s handled, portfolios/s published against the demand (every user
at ``VALUER_MAX_HZ``), CPU, memory, and the cost per tick and per portfolio (:mod:`.valuation_shards`).
"""

from __future__ import annotations

import argparse
import random
import time
from decimal import Decimal

from tickmesh.contracts.instruments import instruments
from tickmesh.services.common.holdings import Account, Position
from tickmesh.services.portfolio_valuer.throttle import Throttle
from tickmesh.services.portfolio_valuer.valuation import Valuer


def build(users: int, symbols: int, seed: int) -> tuple[Valuer, list[str], random.Random]:
    rng = random.Random(seed)
    ref = {s: i.reference_price for s, i in instruments().items()}
    universe = list(ref)
    valuer = Valuer(reference_prices=ref, start_ts=time.time_ns() // 1000)
    for i in range(users):
        held = rng.sample(universe, symbols)
        valuer.set_account(
            f"u{i}",
            Account(
                Decimal(rng.randint(0, 10**7)) / 100,
                {s: Position(Decimal(rng.randint(1, 10**6)) / 1000, ref[s]) for s in held},
            ),
        )
    return valuer, universe, rng


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--symbols", type=int, default=20, help="symbols held per user")
    p.add_argument("--ticks", type=int, default=2_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--shards", type=int, default=0, help="run this many real valuer processes over NATS instead")
    p.add_argument("--rate", type=float, default=500.0, help="sharded: ticks per second published")
    p.add_argument("--seconds", type=float, default=20.0, help="sharded: length of the measured window")
    p.add_argument("--max-hz", type=float, default=4.0, help="sharded: VALUER_MAX_HZ")
    args = p.parse_args(argv)
    if args.shards:
        from .valuation_shards import run_sharded

        run_sharded(args)
        return

    t0 = time.perf_counter()
    valuer, universe, rng = build(args.users, args.symbols, args.seed)
    built = time.perf_counter() - t0
    inst = instruments()
    ticks = []
    prices = {s: inst[s].reference_price for s in universe}
    for _ in range(args.ticks):
        s = rng.choice(universe)
        prices[s] = max(prices[s] + inst[s].tick_size * rng.choice((-3, -2, -1, 1, 2, 3)), inst[s].tick_size)
        ticks.append((s, prices[s]))

    throttle = Throttle(max_hz=4)
    ts = time.time_ns() // 1000
    updates = 0
    t0 = time.perf_counter()
    for i, (s, price) in enumerate(ticks):
        now = time.perf_counter()
        changed = valuer.on_price(s, price, ts + i)
        throttle.mark_many(changed, now)
        updates += len(changed)
        throttle.pop_due(now)
    elapsed = time.perf_counter() - t0

    t0 = time.perf_counter()
    n_msgs = min(args.users, 2_000)
    for i in range(n_msgs):
        valuer.portfolio(f"u{i}", ts)
    msg_rate = n_msgs / (time.perf_counter() - t0)

    print(
        f"state: {args.users} users x {args.symbols} symbols = {args.users * args.symbols} holdings "
        f"over {len(universe)} instruments, built in {built:.1f}s"
    )
    print(
        f"ticks: {args.ticks} in {elapsed:.2f}s = {args.ticks / elapsed:,.0f} ticks/s "
        f"({updates / args.ticks:,.0f} holders per tick, {updates / elapsed:,.0f} holder updates/s)"
    )
    print(f"portfolio messages built: {msg_rate:,.0f}/s ({args.symbols} positions each)")


if __name__ == "__main__":
    main()
