"""``tickmesh soak``: many clients against two edges for N minutes, with churn, then the verdict.

What runs: NATS, market-feed (continuous prices), portfolio-valuer, broker, notifier (a
notification for every fill), announcer, and two edges. The clients (``clients.py``) hold
connections for the whole run; meanwhile the soak submits market orders from random clients,
publishes an announcement every few seconds, drops random connections (each comes back after a
short pause, resuming its event channels with ``since``), and restarts edge ``a`` every
``restart_every`` seconds (SIGTERM: it drains, its clients move to ``b``, and it comes back).

At the end it stops the churn, lets every client catch up, and checks:

* zero gaps and zero duplicates on every event channel of every client (against the ledger);
* edge ``b`` (up for the whole run) grew its RSS by at most ``RSS_BOUND_MIB`` between the end of
  the first restart storm and the end, and once every client has left it holds no connection,
  no more asyncio tasks, descriptors or threads than before the clients came (within the small
  margins below);
* nothing logged an error.

It reports availability (client-seconds live over client-seconds the clients wanted to be
connected: the pauses after random disconnects are the clients' own choice), the error rate
(commands failing for reasons other than a service's business rejection, subscriptions refused,
and connection attempts that no edge accepted, over all commands, subscriptions and attempts)
and latency p99 (price ticks from market-feed's ingest to the client, and command round trips).
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import tempfile
import time
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

RSS_BOUND_MIB = 48.0  # growth of the long-lived edge's RSS from the end of the first storm to the end
FD_MARGIN = 8  # descriptors an idle edge may hold beyond its baseline (NATS reconnects, a scrape)
THREAD_MARGIN = 2
TASK_MARGIN = 5
SYMBOLS = ("AAPL", "MSFT", "NVDA", "BTC-USD", "ETH-USD", "EUR/USD", "TSLA", "SPY")
CLIENTS_PER_USER = 10


@dataclass
class Report:
    minutes: float
    clients: int
    users: int
    folder: str = ""  # the processes' logs and JetStream store (removed when the soak passes)
    restarts: int = 0
    random_disconnects: int = 0
    availability: float = 0.0
    error_rate: float = 0.0
    gaps: int = 0
    duplicates: int = 0
    price_p99_ms: float = 0.0
    command_p99_ms: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    close_codes: dict[str, int] = field(default_factory=dict)
    edge_b: dict[str, Any] = field(default_factory=dict)
    logged_errors: dict[str, list[str]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def p99(samples: list[int]) -> float:
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1000.0


async def soak(
    minutes: float,
    clients: int,
    *,
    restart_every: float = 60.0,
    orders_per_s: float = 10.0,
    disconnect_every: float = 90.0,
    folder: Path | None = None,
) -> Report:
    import nats

    from tickmesh import devtokens, streams
    from tickmesh.services.common.holdings import Account, Position

    from .clients import Ledger, SoakClient, Stats
    from .stack import Stack, proc_stats

    folder = folder or Path(tempfile.mkdtemp(prefix="tickmesh-soak-"))
    secret = secrets.token_hex(32)
    users = max(1, clients // CLIENTS_PER_USER)
    accounts = {
        f"soak{u}": Account(Decimal("1000000000.00"), {s: Position(Decimal("1000000"), Decimal("1")) for s in SYMBOLS})
        for u in range(users)
    }
    report = Report(minutes, clients, users, folder=str(folder))
    stack = Stack(folder, secret)
    stats = Stats()
    tokens = {u: devtokens.mint(u, secret=secret, ttl=24 * 3600) for u in accounts}
    admin = devtokens.mint("soak-admin", secret=secret, roles=("admin",), ttl=24 * 3600)
    the_clients = [
        SoakClient(
            i,
            f"soak{i % users}",
            SYMBOLS[i % len(SYMBOLS)],
            (lambda u=f"soak{i % users}": tokens[u]),
            [stack.a.url, stack.b.url],
            stats,
        )
        for i in range(clients)
    ]
    nc = None
    try:
        await stack.start(accounts)
        nc = await nats.connect(stack.nats_url)
        js = nc.jetstream()
        await streams.ensure(js)
        ledger = Ledger()
        await ledger.start(js)
        base_b = proc_stats(stack.b.pid)
        base_b_tasks = (await asyncio.to_thread(stack.b.gauges))["tasks"]
        started = time.monotonic()
        end_at = started + minutes * 60
        stop = asyncio.Event()
        connecting: set[int] = set()
        gate = asyncio.Semaphore(64)  # connection attempts in flight at once
        rss_b: list[tuple[float, float]] = []

        async def connect(c: SoakClient) -> None:
            async with gate:
                try:
                    await c.connect()
                finally:
                    connecting.discard(c.index)

        async def keep_connected() -> None:
            while not stop.is_set():
                now = time.monotonic()
                for c in the_clients:
                    if c.transport is None and c.index not in connecting and now >= c.wanted_offline_until:
                        connecting.add(c.index)
                        c.wanted_offline_until = now + random.uniform(0.1, 1.0)  # backoff if this fails
                        asyncio.ensure_future(connect(c))
                await asyncio.sleep(0.1)

        async def orders() -> None:
            n = 0
            while time.monotonic() < end_at:
                live = [c for c in random.sample(the_clients, min(20, clients)) if c.live]
                if live:
                    n += 1
                    random.choice(live).submit_order(n)
                await asyncio.sleep(1 / orders_per_s)

        async def announcements() -> None:
            import aiohttp

            n = 0
            async with aiohttp.ClientSession() as http:
                while time.monotonic() < end_at:
                    n += 1
                    edge = random.choice(stack.edges)
                    try:
                        async with http.post(
                            f"{edge.http}/cmd",
                            headers={"Authorization": f"Bearer {admin}"},
                            json={
                                "name": "announcement.publish",
                                "key": f"soak-ann-{n}",
                                "data": {"severity": "info", "text": f"soak announcement {n}"},
                            },
                        ) as resp:
                            stats.count["announcements_sent"] += 1
                            if resp.status != 200:
                                stats.count["announcements_refused"] += 1
                    except aiohttp.ClientError:
                        stats.count["announcements_refused"] += 1  # edge a restarting: sent again next time
                    await asyncio.sleep(5)

        async def churn() -> None:
            last_restart = time.monotonic()
            while time.monotonic() < end_at:
                await asyncio.sleep(1)
                for c in the_clients:
                    if c.live and random.random() < 1 / disconnect_every:
                        c.disconnect(random.uniform(0.5, 3.0))
                        report.random_disconnects += 1
                if time.monotonic() - last_restart >= restart_every and time.monotonic() < end_at - 10:
                    await stack.restart(stack.a)
                    report.restarts += 1
                    last_restart = time.monotonic()

        async def sample() -> None:
            while not stop.is_set():
                s = proc_stats(stack.b.pid)
                if s is not None:
                    rss_b.append((time.monotonic() - started, s.rss_mib))
                await asyncio.sleep(2)

        tasks = [asyncio.ensure_future(f()) for f in (keep_connected, sample)]
        await asyncio.gather(orders(), announcements(), churn())

        # Quiet: no more churn; everyone comes back and catches up with the ledger.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            await asyncio.sleep(1)
            if all(c.live and not c.pending_subs and c.caught_up(ledger) for c in the_clients):
                break
        stop.set()
        for task in tasks:
            task.cancel()
        total = time.monotonic() - started
        upto = {ch: 1 << 62 for ch in ("trades", "notifications", "announcements")}
        for c in the_clients:
            gaps, dups = c.check(ledger, upto)
            report.gaps += gaps
            report.duplicates += dups
            if c.live_since is not None:
                c.connected_s += time.monotonic() - c.live_since
                c.live_since = None
        wanted = sum(total - c.paused_s for c in the_clients)
        report.availability = sum(c.connected_s for c in the_clients) / wanted if wanted > 0 else 0.0

        # Everyone leaves; the long-lived edge must go back to where it started.
        for c in the_clients:
            c.stopped = True
            if c.transport is not None:
                c.transport.disconnect(graceful=False)
        await asyncio.sleep(5)
        end_b = proc_stats(stack.b.pid)
        gauges = await asyncio.to_thread(stack.b.gauges)
        storm_end = restart_every + 20
        warm = max((rss for t, rss in rss_b if t <= storm_end), default=rss_b[0][1] if rss_b else 0.0)
        last = rss_b[-1][1] if rss_b else 0.0
        report.edge_b = {
            "rss_mib_after_first_storm": round(warm, 1),
            "rss_mib_at_end": round(last, 1),
            "rss_drift_mib": round(last - warm, 1),
            "rss_bound_mib": RSS_BOUND_MIB,
            "fds_before": base_b.fds if base_b else None,
            "fds_after": end_b.fds if end_b else None,
            "threads_before": base_b.threads if base_b else None,
            "threads_after": end_b.threads if end_b else None,
            "tasks_before": base_b_tasks,
            "tasks_after": gauges["tasks"],
            "connections_after": gauges["connections"],
        }

        commands = stats.count["commands_sent"]
        subs = stats.count["went_live"] * 4
        failures = (
            sum(
                v
                for k, v in stats.errors.items()
                if k.startswith(("command", "trades", "notifications", "announcements", "prices", "portfolio"))
            )
            + stats.count["connect_failures"]
        )
        timeouts = sum(len(c.commands) for c in the_clients)  # never answered
        report.error_rate = (failures + timeouts) / max(1, commands + subs + stats.count["connect_attempts"])
        trades = sum(len(v) for k, v in ledger.positions.items() if k.endswith(".trades"))
        notes = sum(len(v) for k, v in ledger.positions.items() if k.endswith(".notifications"))
        report.counts = dict(
            stats.count, commands_unanswered=timeouts, ledger_trades=trades, ledger_notifications=notes
        )
        report.errors = dict(stats.errors)
        report.close_codes = {str(k): v for k, v in stats.close_codes.items()}
        report.price_p99_ms = p99(stats.price_latency_us)
        report.command_p99_ms = p99(stats.command_rtt_us)
        report.logged_errors = stack.errors_logged()
        judge(report)
        return report
    finally:
        for c in the_clients:
            c.stopped = True
            if c.transport is not None:
                c.transport.disconnect(graceful=False)
        if nc is not None:
            await nc.close()
        await asyncio.to_thread(stack.stop)


def judge(r: Report) -> None:
    e = r.edge_b
    if r.gaps:
        r.failures.append(f"{r.gaps} gaps on event channels")
    if r.duplicates:
        r.failures.append(f"{r.duplicates} duplicates on event channels")
    if r.counts.get("gaps_reported_by_edge"):
        r.failures.append(f"{r.counts['gaps_reported_by_edge']} resumptions the edge could not honour")
    if e["rss_drift_mib"] > RSS_BOUND_MIB:
        r.failures.append(f"edge b's RSS grew {e['rss_drift_mib']} MiB (bound {RSS_BOUND_MIB})")
    if e["connections_after"]:
        r.failures.append(f"edge b still counts {e['connections_after']} connections with every client gone")
    if e["fds_after"] is not None and e["fds_before"] is not None and e["fds_after"] > e["fds_before"] + FD_MARGIN:
        r.failures.append(f"edge b holds {e['fds_after']} descriptors, {e['fds_before']} before the clients came")
    if (
        e["threads_after"] is not None
        and e["threads_before"] is not None
        and e["threads_after"] > e["threads_before"] + THREAD_MARGIN
    ):
        r.failures.append(f"edge b runs {e['threads_after']} threads, {e['threads_before']} before")
    if e["tasks_before"] >= 0 and e["tasks_after"] > e["tasks_before"] + TASK_MARGIN:
        r.failures.append(f"edge b runs {e['tasks_after']:.0f} asyncio tasks, {e['tasks_before']:.0f} before")
    if r.logged_errors:
        r.failures.append(f"errors logged by {sorted(r.logged_errors)}")


def render(r: Report) -> str:
    e = r.edge_b
    lines = [
        f"soak: {r.clients} clients ({r.users} users) for {r.minutes:g} min, {r.restarts} edge restarts, "
        f"{r.random_disconnects} random disconnects",
        f"  availability {r.availability * 100:.3f}%  error rate {r.error_rate * 100:.4f}%  "
        f"gaps {r.gaps}  duplicates {r.duplicates}",
        f"  latency p99: price ticks {r.price_p99_ms:.1f} ms, commands {r.command_p99_ms:.1f} ms",
        f"  edge b RSS {e.get('rss_mib_after_first_storm')} -> {e.get('rss_mib_at_end')} MiB "
        f"(drift {e.get('rss_drift_mib')}, bound {e.get('rss_bound_mib')}); fds {e.get('fds_before')} -> "
        f"{e.get('fds_after')}; threads {e.get('threads_before')} -> {e.get('threads_after')}; asyncio tasks "
        f"{e.get('tasks_before')} -> {e.get('tasks_after')}; connections left {e.get('connections_after')}",
        f"  counts {json.dumps(r.counts, sort_keys=True)}",
        f"  errors {json.dumps(r.errors, sort_keys=True)}  closes {json.dumps(r.close_codes, sort_keys=True)}",
    ]
    lines.append("  PASS" if not r.failures else "  FAIL: " + "; ".join(r.failures) + f"\n  logs in {r.folder}")
    return "\n".join(lines)


def main(minutes: float, clients: int, restart_every: float, orders_per_s: float, json_path: str | None) -> int:
    from tickmesh import runtime
    from tickmesh.ops.bench.client import raise_nofile

    raise_nofile()
    report = runtime.run(soak(minutes, clients, restart_every=restart_every, orders_per_s=orders_per_s))
    print(render(report))
    if not report.failures:
        import shutil

        shutil.rmtree(report.folder, ignore_errors=True)
    if json_path:
        Path(json_path).write_text(json.dumps(asdict(report), indent=2))
    return 0 if not report.failures else 1
