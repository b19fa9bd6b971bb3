"""The ``tickmesh`` command: ``up``, ``edge``, ``service NAME``, ``token``, ``settings``, ``soak``."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC

from tickmesh.config import ConfigError


def services() -> list[str]:
    """Every service package with a ``service`` module, market-feed first (``tickmesh up`` order)."""
    import importlib.util
    import pkgutil

    import tickmesh.services as pkg

    names = [
        m.name
        for m in pkgutil.iter_modules(pkg.__path__)
        if m.ispkg and importlib.util.find_spec(f"tickmesh.services.{m.name}.service") is not None
    ]
    names.sort(key=lambda n: (n != "market_feed", n))
    return [n.replace("_", "-") for n in names]


def _service_module(name: str):
    import importlib

    return importlib.import_module(f"tickmesh.services.{name.replace('-', '_')}.service")


def _settings_classes() -> dict[str, type]:
    """Every settings class by name: the edge, each service, and those every process shares."""
    from tickmesh.edge.settings import EdgeSettings
    from tickmesh.metrics import MetricsSettings
    from tickmesh.natsconn import NatsSettings
    from tickmesh.streams import Retention
    from tickmesh.tracing import TracingSettings

    out: dict[str, type] = {
        "edge": EdgeSettings,
        "metrics": MetricsSettings,
        "tracing": TracingSettings,
        "streams": Retention,
        "nats": NatsSettings,
    }
    for name in services():
        out[name] = _service_module(name).SETTINGS
    return out


def cmd_up(args: argparse.Namespace) -> int:
    from tickmesh import logs, runtime
    from tickmesh.ops.up import UpError, run_up

    logs.setup("up")

    async def main() -> int:
        return await run_up(runtime.stop_event(), nats_cluster=args.nats_cluster, edges=args.edges)

    try:
        return runtime.run(main())
    except UpError as exc:
        print(f"tickmesh up: {exc}", file=sys.stderr)
        return 2


def cmd_edge(args: argparse.Namespace) -> int:
    from tickmesh.edge.server import main

    if args.workers is not None:
        if args.workers < 1:
            print("tickmesh edge: --workers must be at least 1", file=sys.stderr)
            return 2
        os.environ["EDGE_WORKERS"] = str(args.workers)

    main()
    return 0


def cmd_service(args: argparse.Namespace) -> int:
    _service_module(args.name).main()
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from tickmesh import devtokens

    secret = devtokens.dev_secret(create=False)
    if secret is None:
        print(
            "tickmesh token: no signing key: set TICKMESH_JWT_SECRET, or run `tickmesh up` once to create a local one",
            file=sys.stderr,
        )
        return 2
    roles = tuple(args.role) if args.role else ("user",)
    ents = tuple(args.entitlement) if args.entitlement else devtokens.ALL_MARKETS
    print(devtokens.mint(args.user, secret=secret, roles=roles, entitlements=ents, ttl=args.ttl))
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    from tickmesh.config import describe

    classes = _settings_classes()
    for name in [args.name] if args.name else list(classes):
        print(f"# {name}")
        for env, default, doc in describe(classes[name]):
            print(f"{env:<28} default {default!r:<26} {doc}")
        print()
    return 0


def cmd_streams(args: argparse.Namespace) -> int:
    """Create or update every stream and bucket as this process's NATS identity (the admin)."""
    import asyncio

    from tickmesh import config, logs, streams
    from tickmesh.natsconn import NatsAuthError, connect

    logs.setup("streams")
    url = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
    settings = config.load(streams.Retention, {**os.environ, "TICKMESH_STREAMS_MANAGE": "on"})

    async def main() -> None:
        nc = await connect(url, name="tickmesh-streams", first_attempt_timeout=args.timeout)
        try:
            await streams.ensure(nc.jetstream(), settings)
        finally:
            await nc.close()

    try:
        asyncio.run(main())
    except (streams.StreamSetupError, NatsAuthError) as exc:
        print(f"tickmesh streams: {exc}", file=sys.stderr)
        return 1
    print(f"tickmesh streams: every stream and bucket is in place ({settings.replicas} replicas)")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from tickmesh.ops.bench.cli import run

    return run(args)


def cmd_soak(args: argparse.Namespace) -> int:
    from tickmesh.ops.soak.run import main

    return main(args.minutes, args.clients, args.restart_every, args.orders_per_s, args.json)


def cmd_announce(args: argparse.Namespace) -> int:
    from tickmesh.services.announcer.cli import run

    return run(args.severity, args.text, args.starts_at, args.ends_at)


def cmd_flags(args: argparse.Namespace) -> int:
    from tickmesh.flags.cli import run

    return run(args)


def _when(us: int | None) -> str:
    from datetime import datetime

    if not us:
        return "-"
    return datetime.fromtimestamp(us / 1e6, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cmd_audit(args: argparse.Namespace) -> int:
    """``tickmesh audit trades``: did the user's connections receive an order's trade events?
    Reads TM_USER_EVENTS and TM_TRADE_AUDIT at ``NATS_URL``. Exit 0 when every execution of the
    order was delivered, 1 when some was not (or none was found), 2 on bad usage or no NATS."""
    import asyncio
    import json

    from tickmesh.contracts.channels import USER_ID_RE
    from tickmesh.edge.auditquery import trade_deliveries

    if not USER_ID_RE.fullmatch(args.user) or not 0 < len(args.order) <= 64:
        print("tickmesh audit: --user must be a user id and --order 1-64 characters", file=sys.stderr)
        return 2
    url = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")

    async def query() -> dict:
        from tickmesh.ops.natsauth import connect_tool

        nc = await connect_tool(url)
        try:
            return await trade_deliveries(nc.jetstream(), args.user, args.order)
        finally:
            await nc.close()

    try:
        answer = asyncio.run(query())
    except Exception as exc:  # NATS unreachable
        print(f"tickmesh audit: could not read NATS at {url}: {type(exc).__name__} {exc}", file=sys.stderr)
        return 2
    executions = answer["executions"]
    if args.json:
        print(json.dumps(answer, indent=2))
    elif not executions:
        print(f"no trade event of order {args.order} for {args.user} is retained")
    else:
        for e in executions:
            print(
                f"seq {e['seq']}  {e.get('status') or '?':<9} {e.get('exec_id') or ''}  "
                f"published {_when(e.get('ts'))}  "
                f"delivered {_when(e['delivered_at'])} ({e['connections']} connection(s))  acked {_when(e['acked_at'])}"
            )
        for r in answer["deliveries"]:
            print(
                f"  {_when(r.get('at'))}  {r.get('event'):<9} seq {r.get('seq')}  {r.get('transport')} "
                f"conn {r.get('conn_id')} on {r.get('edge')}"
            )
        if answer["truncated"]:
            print("  (more records than shown: the scan stopped at its limit)")
    return 0 if executions and all(e["delivered_at"] for e in executions) else 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tickmesh", description="Real-time streaming mesh for an investment platform.")
    sub = p.add_subparsers(dest="command", required=True)
    u = sub.add_parser("up", help="run NATS, every service and one edge locally, supervised")
    u.add_argument(
        "--nats-cluster",
        type=int,
        default=1,
        metavar="N",
        help="run N NATS nodes as one JetStream cluster, streams replicated on min(N, 3) (default 1)",
    )
    u.add_argument(
        "--edges", type=int, default=1, metavar="N", help="run N edges on EDGE_PORT and the ports after it (default 1)"
    )
    u.set_defaults(fn=cmd_up)
    e = sub.add_parser("edge", help="run an edge (its WebSocket engine in front of Quart on Hypercorn)")
    e.add_argument(
        "--workers",
        type=int,
        default=None,
        help="edge processes sharing the port with SO_REUSEPORT (default: EDGE_WORKERS, 1)",
    )
    e.set_defaults(fn=cmd_edge)
    s = sub.add_parser("service", help="run one service")
    s.add_argument("name", choices=services())
    s.set_defaults(fn=cmd_service)
    t = sub.add_parser("token", help="print a signed development token")
    t.add_argument("--user", required=True, help="the token's subject (user id)")
    t.add_argument("--role", action="append", help="a role (user, support, admin); repeatable")
    t.add_argument(
        "--entitlement", action="append", help="a market-data entitlement (equities, crypto, fx); repeatable"
    )
    t.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    t.set_defaults(fn=cmd_token)
    sj = sub.add_parser("streams", help="create or update every JetStream stream and KV bucket (as the NATS admin)")
    sj.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for NATS (default 60)")
    sj.set_defaults(fn=cmd_streams)
    b = sub.add_parser("bench", help="benchmark the edge against peers (ops/bench/README.md)")
    from tickmesh.ops.bench.cli import add_arguments

    add_arguments(b)
    b.set_defaults(fn=cmd_bench)
    so = sub.add_parser(
        "soak",
        help="run the soak test: clients, churn and edge restarts for N minutes, then "
        "check gaps, duplicates, leaks (ops/soak)",
    )
    so.add_argument("--minutes", type=float, default=10.0, help="how long the load runs (default 10)")
    so.add_argument("--clients", type=int, default=2000, help="client connections held throughout (default 2000)")
    so.add_argument("--restart-every", type=float, default=60.0, help="seconds between restarts of edge a (default 60)")
    so.add_argument("--orders-per-s", type=float, default=10.0, help="market orders per second, all clients together")
    so.add_argument("--json", help="also write the report to this file as JSON")
    so.set_defaults(fn=cmd_soak)
    a = sub.add_parser("announce", help="publish (or schedule) a system announcement through the announcer")
    a.add_argument("--severity", choices=["info", "warning", "critical"], default="info")
    a.add_argument("--text", required=True, help="the announcement (at most 1000 characters)")
    a.add_argument("--starts-at", help="ISO 8601 start time (default now; no zone means UTC)")
    a.add_argument("--ends-at", help="ISO 8601 expiry (default ANNOUNCER_DEFAULT_TTL_S after the start)")
    a.set_defaults(fn=cmd_announce)
    fl = sub.add_parser("flags", help="list and change feature flags (rollouts, rules, kill switch)")
    from tickmesh.flags.cli import add_arguments as flag_arguments

    flag_arguments(fl)
    fl.set_defaults(fn=cmd_flags)
    au = sub.add_parser("audit", help="the audit trail of trade events: who received what, when")
    au_sub = au.add_subparsers(dest="what", required=True)
    at = au_sub.add_parser("trades", help="did a user's connections receive an order's trade events, and when")
    at.add_argument("--user", required=True, help="the user id")
    at.add_argument("--order", required=True, help="the order id (from order.submit) or the client order id")
    at.add_argument("--json", action="store_true", help="print the whole answer as JSON")
    at.set_defaults(fn=cmd_audit)
    st = sub.add_parser("settings", help="list every setting, its environment variable and default")
    st.add_argument("name", nargs="?", choices=["edge", "metrics", "tracing", "streams", "nats", *services()])
    st.set_defaults(fn=cmd_settings)
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        code = args.fn(args)
    except ConfigError as exc:
        print(f"tickmesh {args.command}: bad setting {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
    sys.exit(code or 0)
