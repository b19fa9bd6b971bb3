"""``valuation --shards N``: real portfolio-valuer processes, one per shard, over a real NATS.

What is measured comes from the valuers themselves: ``tickmesh_messages_total`` on their
``/metrics`` (ticks in, portfolios out, read at the start and end of the window) and their CPU
seconds from ``/proc``. The tick publisher and the counters run in this process; nothing here
subscribes to the portfolios (that would cost as much CPU as the valuers on a small machine).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

import nats

from tickmesh import streams
from tickmesh.contracts import messages
from tickmesh.contracts.channels import tick_subject
from tickmesh.contracts.instruments import instruments
from tickmesh.contracts.messages import SEQ_HEADER
from tickmesh.ops.up import nats_server_binary
from tickmesh.services.common.holdings import Account, Position, account_key, encode_account
from tickmesh.services.portfolio_valuer.shards import shard_of

from .procstats import cpu_seconds, machine_ticks, rss_bytes

_COUNTER = re.compile(r'^tickmesh_messages_total\{class="state",direction="(in|out)"\} ([0-9.e+]+)$', re.M)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _counts(port: int) -> dict[str, float]:
    """``{"in": ticks consumed, "out": portfolios published}`` from a valuer's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {d: float(v) for d, v in _COUNTER.findall(text)}


async def _seed(url: str, users: int, symbols: int, seed: int) -> None:
    rng = random.Random(seed)
    ref = {s: i.reference_price for s, i in instruments().items()}
    universe = list(ref)
    nc = await nats.connect(url)
    js = nc.jetstream()
    await streams.ensure(js)
    kv = await js.key_value(streams.HOLDINGS_BUCKET)
    batch = []
    for i in range(users):
        held = rng.sample(universe, symbols)
        acct = Account(
            Decimal(rng.randint(0, 10**7)) / 100,
            {s: Position(Decimal(rng.randint(1, 10**6)) / 1000, ref[s]) for s in held},
        )
        batch.append(kv.put(account_key(f"u{i}"), encode_account(acct)))
        if len(batch) >= 500:
            await asyncio.gather(*batch)
            batch = []
    await asyncio.gather(*batch)
    await nc.close()


async def _publish_ticks(url: str, rate: float, stop: asyncio.Event, seed: int) -> int:
    """A random walk of contract-valid ticks over every instrument, ``rate`` per second, as
    market-feed publishes them (core NATS, stored by TM_TICKS). Returns how many were sent."""
    rng = random.Random(seed)
    inst = instruments()
    universe = list(inst)
    prices = {s: inst[s].reference_price for s in universe}
    nc = await nats.connect(url)
    sent = 0
    started = time.monotonic()
    while not stop.is_set():
        due = int((time.monotonic() - started) * rate) - sent
        for _ in range(max(due, 0)):
            s = rng.choice(universe)
            prices[s] = max(prices[s] + inst[s].tick_size * rng.choice((-3, -2, -1, 1, 2, 3)), inst[s].tick_size)
            ts = time.time_ns() // 1000
            tick = {"symbol": s, "last": str(prices[s]), "ts": ts, "ingest_ts": ts, "provider": "bench"}
            await nc.publish(tick_subject(s), messages.encode("tick", tick), headers={SEQ_HEADER: str(ts)})
            sent += 1
        await asyncio.sleep(0.005)
    await nc.flush()
    await nc.close()
    return sent


def _wait_started(log: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"valuer exited: {log.read_text()[-2000:]}")
        if "valuer.started" in log.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise RuntimeError("valuer did not start in time")


def run_sharded(args) -> None:
    work = Path(tempfile.mkdtemp(prefix="tm-valuation-"))
    nats_port = _free_port()
    server = subprocess.Popen(
        [nats_server_binary(), "-a", "127.0.0.1", "-p", str(nats_port), "-js", "-sd", str(work / "js")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"nats://127.0.0.1:{nats_port}"
    valuers: list[tuple[subprocess.Popen, int, Path]] = []
    try:
        time.sleep(0.5)
        t0 = time.perf_counter()
        asyncio.run(_seed(url, args.users, args.symbols, args.seed))
        print(f"seeded {args.users} accounts x {args.symbols} symbols in {time.perf_counter() - t0:.1f}s")
        env = dict(
            os.environ,
            NATS_URL=url,
            VALUER_SHARDS=str(args.shards),
            VALUER_MAX_HZ=str(args.max_hz),
            TICKMESH_LOG_FORMAT="json",
            METRICS_HOST="127.0.0.1",
        )
        for shard in range(args.shards):
            port = _free_port()
            log = work / f"valuer-{shard}.log"
            proc = subprocess.Popen(
                [sys.executable, "-m", "tickmesh", "service", "portfolio-valuer"],
                env=dict(env, VALUER_SHARD=str(shard), METRICS_PORT=str(port)),
                stdout=open(log, "wb"),
                stderr=subprocess.STDOUT,
            )
            valuers.append((proc, port, log))
        for proc, _, log in valuers:
            _wait_started(log, proc)
        asyncio.run(_measure(args, url, valuers))
    finally:
        for proc, _, _ in valuers:
            proc.send_signal(signal.SIGTERM)
        for proc, _, _ in valuers:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)


async def _measure(args, url: str, valuers) -> None:
    stop = asyncio.Event()
    publisher = asyncio.ensure_future(_publish_ticks(url, args.rate, stop, args.seed))
    await asyncio.sleep(3)  # warm up: every user's first portfolio, steady tick flow
    before = [(_counts(port), cpu_seconds(proc.pid)) for proc, port, _ in valuers]
    busy0, total0 = machine_ticks()
    started = time.monotonic()
    await asyncio.sleep(args.seconds)
    elapsed = time.monotonic() - started
    busy1, total1 = machine_ticks()
    after = [(_counts(port), cpu_seconds(proc.pid)) for proc, port, _ in valuers]
    stop.set()
    sent = await publisher

    users_per_shard = [0] * args.shards
    for i in range(args.users):
        users_per_shard[shard_of(f"u{i}", args.shards)] += 1
    demand = args.users * args.max_hz
    print(
        f"{args.shards} shards, {args.users} users x {args.symbols} symbols, ticks offered {args.rate:.0f}/s "
        f"({sent} sent), window {elapsed:.1f}s, VALUER_MAX_HZ {args.max_hz:g}: demand {demand:,.0f} portfolios/s; "
        f"machine {(busy1 - busy0) / max(total1 - total0, 1):.0%} busy ({os.cpu_count()} cores)"
    )
    total_out = total_cpu = total_in = 0.0
    for shard, ((c0, cpu0), (c1, cpu1), (proc, _, _)) in enumerate(zip(before, after, valuers, strict=True)):
        ticks = (c1.get("in", 0) - c0.get("in", 0)) / elapsed
        out = (c1.get("out", 0) - c0.get("out", 0)) / elapsed
        cpu = ((cpu1 or 0) - (cpu0 or 0)) / elapsed
        rss = (rss_bytes(proc.pid) or 0) / 2**20
        users = users_per_shard[shard]
        total_out += out
        total_cpu += cpu
        total_in += ticks
        print(
            f"  shard {shard}: {users} users, {ticks:,.0f} ticks/s in, {out:,.0f} portfolios/s out "
            f"({out / max(users * args.max_hz, 1):.0%} of its demand), CPU {cpu:.0%} of a core, RSS {rss:.0f} MiB "
            f"({rss * 1024 / max(users, 1):.1f} KiB/user)"
        )
    print(
        f"  total: {total_out:,.0f} portfolios/s ({total_out / demand:.0%} of demand), CPU {total_cpu:.0%}; "
        f"{total_cpu / max(total_out, 1) * 1e6:.0f} us of CPU per portfolio published, "
        f"{total_cpu / max(total_in / args.shards, 1) * 1e6:.0f} us per tick (all shards)"
    )
