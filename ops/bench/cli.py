"""``tickmesh bench``: options, the run, and its outputs (table on stdout, JSON, RESULTS.md).

Examples::

    tickmesh bench --quick                                  # every scenario and peer, small, ~3 min
    tickmesh bench --scenario fan-out --scenario wide       # the full sizes of two scenarios
    tickmesh bench --quick --target tickmesh --scenario fan-out
    tickmesh bench --url ws://127.0.0.1:8000/ws --protocol tickmesh --nats-url nats://127.0.0.1:4222 \\
        --scenario fan-out                                  # a server started by someone else
"""

from __future__ import annotations

import argparse
import datetime
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import procstats, report
from .protocols import CODECS
from .targets import BENCH_SECRET, DEFAULT_TARGETS, TARGETS

# What `tickmesh --help` needs is imported here; the load client (picows), NATS and the scenarios
# are imported by run(), so other tickmesh commands never pay for them.
SCENARIOS = ("fan-out", "wide", "idle", "storm", "slow", "sse", "e2e")

HERE = Path(__file__).resolve().parent

QUICK = dict(
    seconds=3.0,
    drain=2.0,
    fanout_clients=50,
    fanout_rates=[10.0, 100.0],
    wide_clients=200,
    idle_clients=300,
    storm_clients=100,
    storm_deadline=20.0,
    slow_clients=50,
    e2e_clients=20,
    connect_timeout=30.0,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="small N and a few seconds per scenario")
    p.add_argument("--scenario", action="append", choices=SCENARIOS, help="repeatable; default: all")
    p.add_argument("--target", action="append", choices=TARGETS, help="repeatable; default: all but tickmesh-uvicorn")
    p.add_argument("--seconds", type=float, help="publishing window per row (default 8, quick 3)")
    p.add_argument("--drain", type=float, help="longest wait for in-flight messages after a window")
    p.add_argument("--workers", type=int, default=2, help="load-client processes (at least 1 per 18,000 clients)")
    p.add_argument("--clients", type=int, help="override N for every scenario")
    for name in ("fanout", "wide", "idle", "storm", "slow", "e2e"):
        p.add_argument(f"--{name}-clients", type=int, help=f"N for the {name} scenario")
    p.add_argument("--rates", help="fan-out publish rates, comma-separated msg/s (default 10,100,300)")
    p.add_argument(
        "--wide-rates", help="wide: shared,own msg/s (default 2,1; 0,1: own channel only, the capacity measure)"
    )
    p.add_argument("--slow-rate", type=float, help="slow consumers: msg/s on the hot channel (default 20)")
    p.add_argument("--storm-rate", type=float, help="storm: news stories stored per second throughout (default 20)")
    p.add_argument(
        "--source-addresses",
        type=int,
        default=0,
        help="client source addresses 127.0.0.1.. (default: one per 25,000 connections)",
    )
    p.add_argument(
        "--connect-timeout",
        type=float,
        help="seconds the connect phase may take (default 90, or 1 per 200 clients if longer)",
    )
    p.add_argument("--url", help="measure a running server at this WebSocket URL instead of starting targets")
    p.add_argument("--protocol", choices=sorted(CODECS), default="tickmesh", help="protocol of --url")
    p.add_argument("--nats-url", help="NATS the --url server reads from (the bench publishes there)")
    p.add_argument("--secret", help="JWT secret of the --url server (default: the bench's own)")
    p.add_argument("--json", type=Path, help="where to write the JSON record (default: in the work folder)")
    p.add_argument("--write-results", action="store_true", help="also write ops/bench/RESULTS.md")
    p.add_argument("--edge-rev", help="run the edge as committed at this git revision (default: working tree)")
    p.add_argument("--edge-workers", type=int, default=1, help="edge processes on one port (tickmesh edge --workers)")
    p.add_argument("--workdir", type=Path, help="logs and configs of the servers (default: a temp folder)")


def options(args: argparse.Namespace):
    from .scenarios import Options

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tickmesh-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)  # also with --url, where no target makes it
    opts = Options(
        targets=list(args.target or DEFAULT_TARGETS),
        scenarios=list(args.scenario or SCENARIOS),
        workdir=workdir,
        workers=args.workers,
    )
    if args.quick:
        for key, value in QUICK.items():
            setattr(opts, key, value)
    if args.seconds:
        opts.seconds = args.seconds
    if args.drain is not None:
        opts.drain = args.drain
    if args.clients:
        for key in ("fanout_clients", "wide_clients", "idle_clients", "storm_clients", "slow_clients", "e2e_clients"):
            setattr(opts, key, args.clients)
    for name in ("fanout", "wide", "idle", "storm", "slow", "e2e"):
        if getattr(args, f"{name}_clients"):
            setattr(opts, f"{name}_clients", getattr(args, f"{name}_clients"))
    if args.rates:
        opts.fanout_rates = [float(r) for r in args.rates.split(",")]
    if args.wide_rates:
        opts.wide_shared_rate, opts.wide_own_rate = (float(r) for r in args.wide_rates.split(","))
        if opts.wide_shared_rate < 0 or opts.wide_own_rate < 0 or opts.wide_shared_rate + opts.wide_own_rate == 0:
            raise SystemExit("tickmesh bench: --wide-rates takes two rates >= 0, not both 0 (e.g. 0,1)")
    if args.slow_rate:
        opts.slow_rate = args.slow_rate
    opts.source_addresses = max(0, args.source_addresses)
    most = max(opts.fanout_clients, opts.wide_clients, opts.idle_clients, opts.storm_clients, opts.slow_clients)
    opts.connect_timeout = args.connect_timeout or max(opts.connect_timeout, most / 200)
    if args.storm_rate:
        opts.storm_rate = args.storm_rate
    if args.edge_workers != 1:
        from .targets import EDGE_WORKERS

        EDGE_WORKERS["n"] = max(1, args.edge_workers)
    if args.edge_rev:
        from .targets import EDGE_SOURCE

        EDGE_SOURCE["rev"] = args.edge_rev
    if args.url:
        if not args.nats_url:
            raise SystemExit("tickmesh bench: --url needs --nats-url (the bench publishes the load there)")
        opts.external = {
            "url": args.url,
            "protocol": args.protocol,
            "nats_url": args.nats_url,
            "secret": args.secret or (BENCH_SECRET if args.protocol == "tickmesh" else None),
        }
        opts.targets = ["external"]
    return opts


KEPT_MARKER = "<!-- Sections below come from other benches and are kept when this file is rewritten. -->"


def _commit() -> str:
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True, timeout=5
            ).stdout.strip()
            or "?"
        )
    except Exception:  # not a git checkout
        return "?"


async def _run(opts) -> list[report.Row]:
    from .pool import Pool, workers_needed

    most = max(opts.fanout_clients, opts.wide_clients, opts.idle_clients, opts.storm_clients, opts.slow_clients)
    pool = Pool(workers_needed(most, opts.workers))
    try:
        from .scenarios import Bench

        return await Bench(opts, pool).run()
    finally:
        await pool.stop()


def run(args: argparse.Namespace, argv: list[str] | None = None) -> int:
    """Run the bench as ``args`` say; print the table; write the JSON (and RESULTS.md)."""
    import uvloop

    from .client import raise_nofile

    raise_nofile()
    opts = options(args)
    started = datetime.datetime.now(datetime.UTC)
    t0 = time.monotonic()
    print(
        f"tickmesh bench: scenarios {', '.join(opts.scenarios)}; targets {', '.join(opts.targets)}; "
        f"logs in {opts.workdir}",
        file=sys.stderr,
    )
    rows = uvloop.run(_run(opts))
    command = "tickmesh bench " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[2:]))
    meta = {
        "started": started.isoformat(timespec="seconds"),
        "seconds": time.monotonic() - t0,
        "command": command,
        "machine": procstats.machine_info(),
        "commit": _commit(),
        "shared": True,
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(opts).items()},
    }
    print(report.table(rows))
    print()
    print(report.ratio_table(rows))
    path = args.json or opts.workdir / "bench.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    report.write_json(path, rows, meta)
    print(f"\nJSON record: {path}", file=sys.stderr)
    if args.write_results:
        results = HERE / "RESULTS.md"
        # Sections measured by other benches (e.g. valuation.py) follow KEPT_MARKER: keep them.
        old = results.read_text() if results.exists() else ""
        kept = old[old.index(KEPT_MARKER) :] if KEPT_MARKER in old else ""
        results.write_text(report.results_markdown(rows, meta) + (f"\n{kept}" if kept else ""))
        print(f"wrote {results}", file=sys.stderr)
    return 0
