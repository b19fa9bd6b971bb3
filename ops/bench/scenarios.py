"""The scenarios: each starts its targets, drives load, and returns :class:`Row` records.

Every scenario is bounded: a fixed number of clients, a fixed publishing window, a capped drain,
and connect/recovery deadlines; it stops its servers before returning, and targets loopback only.

========== ====================================================================================
fan-out    N clients on one hot channel (``prices:AAPL``); one row per publish rate.
wide       N clients, each on its own channel plus a shared one. Until the edge has auth and
           user channels, "own" is ``prices:<SYMBOL>`` dealt round-robin over the instruments
           in contracts/instruments.toml (52 today, so each symbol channel has N / 52 clients), and the
           shared channel is ``prices:AAPL``.
idle       N subscribed connections and no traffic: connect rate, RSS per connection.
storm      two edges on one NATS; N clients on edge A subscribe ``news`` while stories are
           stored at a steady rate; A is killed (SIGKILL) and every client resumes on edge B with
           ``since``: seconds until all resubscribed and recovered, gaps and duplicates counted by
           stream position (storm.py). tickmesh only, not with ``--url``.
slow       N clients on the hot channel; baseline row, then 10 % stop reading (their receive
           buffers are 4 KiB, so the server sees them stall at once): the others' p99 should not
           move. Every target.
sse        fan-out over Server-Sent Events (``/ticket``, then ``/sse``) at the first two fan-out
           rates; a "not available" row when the edge has no ``/sse``.
e2e        market-feed -> NATS -> edge -> client: latency from the tick's own ``ts`` field.
========== ====================================================================================
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from tickmesh.contracts.channels import tick_subject
from tickmesh.contracts.instruments import instruments

from . import procstats, publisher, storm
from .pool import Pool, source_addresses
from .publisher import Flow
from .report import Progress, Row
from .targets import EDGE_TARGETS, Target, external_target, start_market_feed, start_target

HOT = "AAPL"
TICKMESH_ONLY = ("storm", "sse", "e2e")


@dataclass
class Options:
    """Sizes and times of a run (``--quick`` picks small ones); see ops/bench/README.md."""

    targets: list[str]
    scenarios: list[str]
    workdir: Path
    seconds: float = 8.0
    drain: float = 5.0
    workers: int = 2
    fanout_clients: int = 1000
    fanout_rates: list[float] = field(default_factory=lambda: [10.0, 100.0, 300.0])
    wide_clients: int = 10_000
    wide_shared_rate: float = 2.0
    wide_own_rate: float = 1.0  # msg/s on each "own" channel (so each client gets shared + own)
    idle_clients: int = 10_000
    storm_clients: int = 10_000
    storm_rate: float = 20.0  # news stories stored per second during the storm
    storm_deadline: float = 45.0
    slow_clients: int = 1000
    slow_rate: float = 20.0
    e2e_clients: int = 200
    e2e_symbols: int = 10
    e2e_rate: float = 100.0
    connect_timeout: float = 90.0
    source_addresses: int = 0  # client source addresses (0: one per 25,000 connections)
    external: dict | None = None  # {"url", "protocol", "nats_url", "secret"}


class Bench:
    """One run: the load-client pool, the options, the rows so far."""

    def __init__(self, opts: Options, pool: Pool) -> None:
        self.opts = opts
        self.pool = pool
        self.rows: list[Row] = []
        self.progress = Progress()

    # -- building blocks ---------------------------------------------------------------

    def start(self, name: str) -> Target:
        ext = self.opts.external
        if ext is not None:
            return external_target(ext["url"], ext["protocol"], ext["nats_url"], ext.get("secret"))
        self.progress.show(f"starting {name} ...")
        return start_target(name, self.opts.workdir / name)

    async def connect(
        self, target: Target, conns: list, *, key: str = "bt", reconnect: bool = False, track: str | None = None
    ) -> dict:
        """Open and subscribe ``conns``; returns merged counts plus ``per_s`` (connect rate).
        ``track``: an event channel whose positions every connection keeps (the storm)."""
        self.progress.show(f"{target.name}: connecting {len(conns):,} clients ...")
        res = await self.pool.connect(
            conns,
            url=target.ws_url,
            protocol=target.protocol,
            sources=source_addresses(len(conns), self.opts.source_addresses),
            secret=target.secret,
            key=key,
            reconnect=reconnect,
            timeout=self.opts.connect_timeout,
            track=track,
        )
        res["per_s"] = res["ready"] / res["seconds"] if res["seconds"] > 0 else None
        return res

    def base_row(self, scenario: str, target: Target, step: str, clients: int, conn: dict) -> Row:
        note = ""
        if conn["errors"]:
            worst = max(conn["errors"].items(), key=lambda kv: kv[1])
            note = f"{conn['failed']} connects failed ({worst[0]} x{worst[1]})"
        return Row(scenario, target.name, step, clients, conn["ready"], conn["per_s"], note=note)

    async def _show_progress(self, label: str, seconds: float) -> None:
        start = time.monotonic()
        while True:
            await asyncio.sleep(0.5)
            peek = await self.pool.peek()
            el = time.monotonic() - start
            self.progress.show(
                f"{label}  {min(el, seconds):4.1f}/{seconds:.0f}s  received {peek['received']:,}"
                f"  ({peek['received'] / el:,.0f}/s)  open {peek['open']:,}"
            )

    async def window(
        self,
        row: Row,
        target: Target,
        load: Callable[[], Awaitable[dict[str, int]]],
        subscribers: dict[str, int],
        clients: int,
    ) -> Row:
        """Measure one window: reset the clients, run ``load`` (it returns messages published per
        subject), cut off, drain until deliveries stop (capped), and fill ``row``.

        ``subscribers`` is how many of the ``clients`` subscribe to each subject; expected
        deliveries scale it by the clients that were ready and still measured.
        """
        pool, pids = self.pool, target.pids()
        since = time.time_ns() // 1000
        await pool.each("reset", since_us=since)
        s0 = procstats.sample([*pids.values(), *pool.pids])
        shower = asyncio.ensure_future(
            self._show_progress(f"{row.scenario} {target.name} {row.step}", self.opts.seconds)
        )
        try:
            published = await load()
            s1 = procstats.sample([*pids.values(), *pool.pids])
            await pool.each("cutoff", until_us=time.time_ns() // 1000)
            last, last_at = -1, time.monotonic()
            deadline = last_at + self.opts.drain
            while time.monotonic() < deadline:
                received = (await pool.peek())["received"]
                if received != last:
                    last, last_at = received, time.monotonic()
                elif time.monotonic() - last_at > 0.5:
                    break
                await asyncio.sleep(0.1)
            s2 = procstats.sample([*pids.values(), *pool.pids])
        finally:
            shower.cancel()
            self.progress.done()
        stats = await pool.collect()
        busy_window = s1.wall - s0.wall
        row.offered_msgs_per_s = sum(published.values()) / busy_window if busy_window > 0 else None
        share = stats["measured"] / clients if clients else 0.0
        row.expected = int(round(sum(published.get(s, 0) * n for s, n in subscribers.items()) * share))
        row.delivered = stats["received"]
        delivered_span = max(busy_window, last_at - s0.wall)
        row.delivered_per_s = row.delivered / delivered_span if delivered_span > 0 else None
        row.fraction = row.delivered / row.expected if row.expected else None
        row.set_latency(stats["hist"])
        for name, pid in pids.items():
            rss = procstats.rss_bytes(pid)
            row.servers[name] = {
                "cpu": procstats.cpu_percent(s0, s1, pid),
                "rss_mib": None if rss is None else rss / 1048576,
            }
        gen = procstats.cpu_used(s0, s2, pool.pids)
        row.loadgen_cpu = 100.0 * procstats.cpu_used(s0, s1, pool.pids) / busy_window if busy_window > 0 else None
        row.client_us_per_msg = 1e6 * gen / row.delivered if row.delivered else None
        row.busy = procstats.machine_busy(s0, s1)
        row.closed_by_server = stats["closed_by_server"]
        row.close_codes = {str(k): v for k, v in stats["close_codes"].items()}
        if stats["close_codes"]:
            row.note = (row.note + f" close codes {row.close_codes}").strip()
        self.rows.append(row)
        self.progress.line(_summary(row))
        return row

    def drive(self, nc, flows: list[Flow]) -> Callable[[], Awaitable[dict[str, int]]]:
        return lambda: publisher.drive(nc, flows, self.opts.seconds)

    async def run_on(self, name: str, body: Callable[[Target], Awaitable[None]]) -> None:
        """Start ``name``, run ``body`` on it, and always close the clients and stop the target."""
        target = None
        try:
            target = self.start(name)
            await body(target)
        except Exception as exc:  # one failing target must not lose the other rows
            self.rows.append(Row(self._current, name, note=f"FAILED: {type(exc).__name__}: {exc}"))
        finally:
            self.progress.show(f"{name}: closing ...")
            try:
                await self.pool.each("close")
            finally:
                if target is not None:
                    target.stop()
                self.progress.done()

    # -- scenarios --------------------------------------------------------------------------

    async def fan_out(self, name: str) -> None:
        """One row per rate; the clients reconnect for every row, so a backlog a saturated peer
        built at one rate (unbounded queues) cannot leak into the next row."""
        n = self.opts.fanout_clients

        async def body(target: Target) -> None:
            nc = await publisher.connect(target.nats_url)
            try:
                for rate in self.opts.fanout_rates:
                    conn = await self.connect(target, [(i, [f"prices:{HOT}"], False) for i in range(n)])
                    row = self.base_row("fan-out", target, f"{rate:g} msg/s", n, conn)
                    await self.window(
                        row, target, self.drive(nc, [Flow(tick_subject(HOT), HOT, rate)]), {tick_subject(HOT): n}, n
                    )
                    await self.pool.each("close")
                    await asyncio.sleep(1.0)  # the server notices the closes and frees their queues
            finally:
                await nc.close()

        await self.run_on(name, body)

    async def wide(self, name: str) -> None:
        """With a shared rate of 0 (``--wide-rates 0,1``) clients subscribe their own channel only:
        the capacity measure of issue 11 (N connections, each receiving 1 msg/s)."""
        n = self.opts.wide_clients
        shared, own_rate = self.opts.wide_shared_rate, self.opts.wide_own_rate
        own = [s for s in instruments() if s != HOT]
        extra = [f"prices:{HOT}"] if shared > 0 else []
        conns = [(i, [f"prices:{own[i % len(own)]}", *extra], False) for i in range(n)]
        subscribers = {tick_subject(HOT): n} if shared > 0 else {}
        for i in range(n):
            subject = tick_subject(own[i % len(own)])
            subscribers[subject] = subscribers.get(subject, 0) + 1
        flows = [Flow(tick_subject(HOT), HOT, shared)] if shared > 0 else []
        mine = own[:n]  # independent channels: their ticks are spread over the interval
        flows += (
            [Flow(tick_subject(s), s, own_rate, k / (len(mine) * own_rate)) for k, s in enumerate(mine)]
            if own_rate > 0
            else []
        )
        step = f"{shared:g}+{own_rate:g} msg/s"

        async def body(target: Target) -> None:
            conn = await self.connect(target, conns)
            nc = await publisher.connect(target.nats_url)
            try:
                row = self.base_row("wide", target, step, n, conn)
                await self.window(row, target, self.drive(nc, flows), subscribers, n)
            finally:
                await nc.close()

        await self.run_on(name, body)

    async def idle(self, name: str) -> None:
        n = self.opts.idle_clients

        async def body(target: Target) -> None:
            await asyncio.sleep(1.0)  # let the server settle before the baseline
            before = {k: procstats.rss_bytes(p) for k, p in target.pids().items()}
            conn = await self.connect(target, [(i, [f"prices:{HOT}"], False) for i in range(n)])
            await asyncio.sleep(2.0)
            row = self.base_row("idle", target, f"{n:,} conns", n, conn)
            pids = target.pids()
            for k, pid in pids.items():
                rss = procstats.rss_bytes(pid)
                row.servers[k] = {"cpu": None, "rss_mib": None if rss is None else rss / 1048576}
            # the server under test: every process but nats-server (all edge workers), or
            # nats-server itself when it is the target (nats-ws)
            servers = [k for k in pids if k != "nats-server"] or [k for k in pids if k == "nats-server"]
            after = {k: procstats.rss_bytes(pids[k]) for k in servers}
            if not servers:
                row.note = (
                    "RSS per connection not measured: the server was started outside the bench (--url) " + row.note
                ).strip()
            elif conn["ready"] and all(before.get(k) and after[k] for k in servers):
                grown = sum(after[k] - before[k] for k in servers)
                row.extra["rss_per_conn_kib"] = grown / conn["ready"] / 1024
                row.note = (f"{row.extra['rss_per_conn_kib']:.1f} KiB/conn in {'+'.join(servers)} " + row.note).strip()
            self.rows.append(row)
            self.progress.line(_summary(row))

        await self.run_on(name, body)

    async def storm(self, name: str) -> None:
        await storm.storm(self, name)

    async def slow(self, name: str) -> None:
        n = self.opts.slow_clients
        flows = [Flow(tick_subject(HOT), HOT, self.opts.slow_rate)]

        async def body(target: Target) -> None:
            conn = await self.connect(target, [(i, [f"prices:{HOT}"], i % 10 == 9) for i in range(n)])
            nc = await publisher.connect(target.nats_url)
            try:
                base = await self.window(
                    self.base_row("slow", target, "baseline", n, conn),
                    target,
                    self.drive(nc, flows),
                    {tick_subject(HOT): n},
                    n,
                )
                paused = sum(r["paused"] for r in await self.pool.each("pause"))
                row = self.base_row("slow", target, "10% stalled", n, conn)
                await self.window(row, target, self.drive(nc, flows), {tick_subject(HOT): n}, n)
                if base.p99_ms and row.p99_ms:
                    row.extra["p99_vs_baseline"] = row.p99_ms / base.p99_ms
                    row.note = (
                        f"{paused} stalled; healthy p99 {row.p99_ms / base.p99_ms:.2f}x baseline " + row.note
                    ).strip()
            finally:
                await nc.close()

        await self.run_on(name, body)

    async def sse(self, name: str) -> None:
        """Fan-out over SSE (``/ticket`` then ``/sse``): the first two fan-out rates, same N."""
        n = self.opts.fanout_clients

        async def body(target: Target) -> None:
            http = target.ws_url.replace("ws://", "http://").rsplit("/", 1)[0] + "/sse"
            try:
                with urllib.request.urlopen(http, timeout=2) as resp:
                    status = resp.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except Exception:  # no answer at all
                status = None
            if status in (404, 405, None):
                self.rows.append(Row("sse", target.name, note="not available: the edge has no /sse endpoint"))
                return
            sse = Target(target.name, "sse", http, target.nats_url, target.servers, target.secret)
            nc = await publisher.connect(target.nats_url)
            try:
                for rate in self.opts.fanout_rates[:2]:
                    conn = await self.connect(sse, [(i, [f"prices:{HOT}"], False) for i in range(n)])
                    row = self.base_row("sse", sse, f"{rate:g} msg/s", n, conn)
                    await self.window(
                        row, sse, self.drive(nc, [Flow(tick_subject(HOT), HOT, rate)]), {tick_subject(HOT): n}, n
                    )
                    await self.pool.each("close")
                    await asyncio.sleep(1.0)
            finally:
                await nc.close()

        await self.run_on(name, body)

    async def e2e(self, name: str) -> None:
        n = self.opts.e2e_clients
        symbols = list(instruments())[: self.opts.e2e_symbols]
        channels = [f"prices:{s}" for s in symbols]

        async def body(target: Target) -> None:
            conn = await self.connect(target, [(i, channels, False) for i in range(n)], key="ts")
            nc = await publisher.connect(target.nats_url)
            tap = publisher.Tap()
            await tap.start(nc, [tick_subject(s) for s in symbols])
            start_market_feed(target, self.opts.workdir / name, symbols, self.opts.e2e_rate)
            await asyncio.sleep(1.5)  # market-feed connects and starts ticking

            async def load() -> dict[str, int]:
                tap.reset()
                await asyncio.sleep(self.opts.seconds)
                return tap.counts()

            try:
                row = self.base_row("e2e", target, f"{self.opts.e2e_rate:g} ticks/s", n, conn)
                row.note = "latency from the tick's ts (provider time) " + row.note
                await self.window(row, target, load, {tick_subject(s): n for s in symbols}, n)
            finally:
                await tap.stop()
                await nc.close()

        await self.run_on(name, body)

    # -- the run ------------------------------------------------------------------------------

    _current = ""

    async def run(self) -> list[Row]:
        runners = {
            "fan-out": self.fan_out,
            "wide": self.wide,
            "idle": self.idle,
            "storm": self.storm,
            "slow": self.slow,
            "sse": self.sse,
            "e2e": self.e2e,
        }
        for scenario in self.opts.scenarios:
            self._current = scenario
            for name in self.opts.targets:
                if scenario in TICKMESH_ONLY and name not in (*EDGE_TARGETS, "external"):
                    continue
                if not self.pool.alive():
                    self.rows.append(Row(scenario, name, note="SKIPPED: a load-client process died"))
                    continue
                try:
                    await runners[scenario](name)
                except Exception as exc:  # the pool broke: keep the rows measured so far
                    self.rows.append(Row(scenario, name, note=f"FAILED: {type(exc).__name__}: {exc}"))
        return self.rows


def _summary(row: Row) -> str:
    def f(v, fmt="{:,.0f}"):
        return "-" if v is None else fmt.format(v)

    return (
        f"{row.scenario:<8} {row.target:<10} {row.step:<14} ready {row.ready:,}/{row.clients:,}"
        f"  deliv/s {f(row.delivered_per_s)}  frac {f(row.fraction, '{:.3f}')}"
        f"  p99 {f(row.p99_ms, '{:.1f}')} ms  busy {f(row.busy)}%  {row.note}"
    )
