"""The reconnect storm: N clients lose their edge at once and resume, with ``since``, on another.

Issue 11, target 8: "10,000 clients dropped at once (edge SIGKILL) are all reconnected,
resubscribed with ``since`` and recovered on a second edge in under 15 s; gaps and duplicates
both 0". What runs:

1. one nats-server and two edges on it from the start: A (the target's) and B (another port);
2. N clients connect to A and subscribe ``news`` (an event channel every user may read), while
   a publisher stores stories in ``TM_NEWS`` (``js.publish`` on ``tm.news``) at a steady rate
   (``--storm-rate``) for the whole storm;
3. A is SIGKILLed (with its workers, under ``--edge-workers``); every client reconnects to B
   (full-jitter backoff, 0.1 s doubling to 2 s) and resubscribes with ``since`` = the last
   position it received (:mod:`tickmesh.ops.bench.positions`);
4. once all have resubscribed and caught up (or the deadline passed), publishing continues
   for one more second and stops; the last stored position is the cut-off, and the scenario
   waits (capped by ``--drain``, at least 5 s) until every client has received it;
5. each client counts gaps and duplicates by stream position; the row sums them.

The row: ``ready`` = clients subscribed before the kill; latency columns = publish -> receive of
every story stored from just before the kill to the cut-off (so ``max`` is about the outage);
``frac`` = stories received / (stored x ready clients). ``extra`` has ``resubscribed``,
``resubscribe_s`` and ``recover_s`` (from the kill until the last client had resubscribed / had
received its replay), ``gaps`` and ``clients_with_gaps`` (of which ``silent_gaps`` and
``clients_with_silent_gaps``: in clients that did reach the cut-off, so positions lost behind a
later one rather than not yet delivered), ``duplicates``, ``early`` (a ``msg``
before its ``ok``), ``not_recovered`` (``ok`` replies with ``recovered: false``, by reason),
``resumes`` and ``replayed`` (``ok`` replies to a ``sub`` with ``since``, and the messages they
said were replayed), ``sub_errors`` (``err`` replies to the ``sub``, by code; a client retries
those the protocol marks retryable, e.g. 501, with full-jitter backoff), ``caught_up``
(clients that reached the cut-off) and ``gap_samples`` (a few clients with gaps: the first
missing run, and the latest ``ok`` as (since asked, seq, replayed, recovered)).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import TYPE_CHECKING

from tickmesh.contracts.channels import Kind, public_subject

from . import procstats, publisher
from .report import Row
from .targets import Target, _children, _http_ok, edge_server, free_port

if TYPE_CHECKING:
    from .scenarios import Bench

CHANNEL = "news"
SETTLE_S = 1.0  # publishing goes on this long after every client has recovered


def kill_edge(target: Target, name: str) -> None:
    """SIGKILL edge ``name`` and its workers (which a killed parent would leave running)."""
    server = target.server(name)
    workers = _children(server.pid) if server.pid is not None else []
    server.stop(signal.SIGKILL)
    for pid in workers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def start_second_edge(bench: Bench, target: Target, name: str) -> str:
    """Edge B on the target's NATS; returns its WebSocket URL once it is ready."""
    port = free_port()
    edge = edge_server(bench.opts.workdir / name, target.nats_url, port, target.secret, variant=name)
    edge.name = "edge-b"
    target.servers.append(edge)
    edge.start()
    edge.wait_until(lambda: _http_ok(f"http://127.0.0.1:{port}/readyz"))
    return f"ws://127.0.0.1:{port}/ws"


async def storm(bench: Bench, name: str) -> None:
    opts = bench.opts
    n = opts.storm_clients
    if opts.external is not None:
        bench.rows.append(
            Row("storm", name, note="not available with --url: the storm starts, kills and replaces its own edges")
        )
        return

    async def body(target: Target) -> None:
        url_b = start_second_edge(bench, target, name)
        nc = await publisher.connect(target.nats_url)
        flow = publisher.EventFlow(nc.jetstream(), public_subject(Kind.NEWS), opts.storm_rate)
        try:
            await run(bench, target, name, n, url_b, flow)
        finally:
            await flow.stop()
            await nc.close()

    await bench.run_on(name, body)


async def run(bench: Bench, target: Target, name: str, n: int, url_b: str, flow: publisher.EventFlow) -> None:
    opts, pool, progress = bench.opts, bench.pool, bench.progress
    conn = await bench.connect(target, [(i, [CHANNEL], False) for i in range(n)], reconnect=True, track=CHANNEL)
    ready = conn["ready"]
    row = bench.base_row("storm", target, f"{n:,} dropped", n, conn)
    flow.start()
    await asyncio.sleep(1.0)  # every client has live stories, so it resumes from a msg's position
    await pool.each("reset", since_us=time.time_ns() // 1000)
    flow.mark()
    pids = list(target.pids().values())
    s0 = procstats.sample([*pids, *pool.pids])
    await pool.each("arm", url=url_b)
    killed = time.time()
    kill_edge(target, "edge")
    deadline = time.monotonic() + opts.storm_deadline
    peek = await pool.peek()
    while time.monotonic() < deadline:
        peek = await pool.peek()
        progress.show(
            f"storm {name}: {peek['subscribed_since_armed']:,}/{ready:,} resubscribed, "
            f"{peek['recovered_since_armed']:,} recovered  {time.time() - killed:4.1f}s"
        )
        if peek["subscribed_since_armed"] >= ready and peek["recovered_since_armed"] >= ready:
            break
        await asyncio.sleep(0.1)
    resubscribed, recovered = peek["subscribed_since_armed"], peek["recovered_since_armed"]
    last_ok_at, last_recovered_at = peek["last_ok_at"], peek["last_recovered_at"]
    await asyncio.sleep(SETTLE_S)
    upto = await flow.stop()
    await pool.each("upto", position=upto)
    cap = time.monotonic() + max(opts.drain, 5.0)
    while time.monotonic() < cap:
        peek = await pool.peek()
        progress.show(f"storm {name}: {peek['caught_up']:,}/{ready:,} reached the cut-off (position {upto:,})")
        if peek["caught_up"] >= ready:
            break
        await asyncio.sleep(0.1)
    s1 = procstats.sample([*pids, *pool.pids])
    progress.done()
    stats = await pool.collect()
    fill(row, target, stats, s0, s1, pool.pids, published=flow.since_mark, ready=ready)
    track = stats.get("track", {})
    row.extra.update(
        rate=opts.storm_rate,
        upto=upto,
        publish_failed=flow.failed,
        resubscribed=resubscribed,
        resubscribe_s=last_ok_at - killed if resubscribed >= ready else None,
        recovered=recovered,
        recover_s=last_recovered_at - killed if recovered >= ready else None,
        gaps=track.get("gaps", 0),
        clients_with_gaps=track.get("clients_with_gaps", 0),
        silent_gaps=track.get("silent_gaps", 0),
        clients_with_silent_gaps=track.get("clients_with_silent_gaps", 0),
        duplicates=track.get("duplicates", 0),
        early=track.get("early", 0),
        not_recovered=track.get("not_recovered", {}),
        caught_up=track.get("caught_up", 0),
        resumes=track.get("resumes", 0),
        replayed=track.get("replayed", 0),
        sub_errors=track.get("sub_errors", {}),
        gap_samples=track.get("gap_samples", []),
    )
    row.note = (describe(row.extra, ready, opts.storm_deadline) + " " + row.note).strip()
    bench.rows.append(row)
    progress.line(f"storm    {name:<10} {row.note}")


def fill(row: Row, target: Target, stats: dict, s0, s1, loadgen: list[int], *, published: int, ready: int) -> None:
    """Deliveries, latency and processes of the whole storm (from just before the kill)."""
    span = s1.wall - s0.wall
    row.offered_msgs_per_s = published / span if span > 0 else None
    row.expected = published * ready
    row.delivered = stats["received"]
    row.delivered_per_s = row.delivered / span if span > 0 else None
    row.fraction = row.delivered / row.expected if row.expected else None
    row.set_latency(stats["hist"])
    for key, pid in target.pids().items():  # edge A is gone: its CPU died with it
        rss = procstats.rss_bytes(pid)
        row.servers[key] = {
            "cpu": procstats.cpu_percent(s0, s1, pid),
            "rss_mib": None if rss is None else rss / 1048576,
        }
    row.loadgen_cpu = 100.0 * procstats.cpu_used(s0, s1, loadgen) / span if span > 0 else None
    row.client_us_per_msg = 1e6 * procstats.cpu_used(s0, s1, loadgen) / row.delivered if row.delivered else None
    row.busy = procstats.machine_busy(s0, s1)
    row.closed_by_server = stats["closed_by_server"]
    row.close_codes = {str(k): v for k, v in stats["close_codes"].items()}
    if row.close_codes:
        row.note = (row.note + f" close codes {row.close_codes}").strip()


def describe(extra: dict, ready: int, deadline: float) -> str:
    def secs(v):
        return f"{v:.1f}s" if v is not None else f">{deadline:.0f}s (deadline)"

    text = (
        f"{extra['resubscribed']:,}/{ready:,} resubscribed in {secs(extra['resubscribe_s'])}, "
        f"recovered in {secs(extra['recover_s'])}; gaps {extra['gaps']:,} "
        f"({extra['clients_with_gaps']:,} clients; {extra['silent_gaps']:,} of them in "
        f"{extra['clients_with_silent_gaps']:,} clients that reached the cut-off), "
        f"duplicates {extra['duplicates']:,}; "
        f"{extra['resumes']:,} resumed with since, {extra['replayed']:,} replayed"
    )
    if extra["early"]:
        text += f", {extra['early']:,} msg before ok"
    if extra["sub_errors"]:
        text += f"; sub refused (err code: count, retried when the code says so) {extra['sub_errors']}"
    if extra["not_recovered"]:
        text += f"; recovered:false {extra['not_recovered']}"
    if extra["caught_up"] < ready:
        text += f"; {ready - extra['caught_up']:,} did not reach the cut-off"
    if extra["publish_failed"]:
        text += f"; {extra['publish_failed']} publishes failed"
    return text
