"""Cost per delivery of the trade audit trail (and of the causal gate's tap), on the edge's own
fan-out path, in one process: the real hub, outboxes, taps and audit buffer; no sockets, no NATS.

Run: ``.venv/bin/python -m tickmesh.ops.bench.audit [--users 2000] [--conns 2] [--rounds 50]``

Every round publishes one trade on each user's ``trades`` subject through :meth:`Hub.publish`
(each of the user's ``--conns`` connections subscribes) and then drains every outbox, as the
flusher does before writing: that is the whole delivery path a trade takes through the edge, up
to the socket write. Three set-ups are timed in the same run, interleaved round by round (the
best round of each is reported, the median too: the machine is shared):

* ``off``: frames go straight to the outbox (EDGE_AUDIT_TRADES=false, EDGE_CAUSAL_HOLD_MS=0);
* ``tap``: the connection's own trades go through the tap that tracks positions for the causal
  gate (EDGE_AUDIT_TRADES=false);
* ``audit``: the tap also records each delivery in the audit buffer (the defaults).

Also timed: building the ``trade_audit`` messages from the recorded deliveries (the background
writer's work per record, off the delivery path). Prints ns per delivery and the ratios.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time

import orjson

from tickmesh.contracts.channels import Kind, user_subject
from tickmesh.edge.audit import TradeAudit
from tickmesh.edge.hub import Hub
from tickmesh.edge.outbox import Outbox
from tickmesh.edge.ownchannels import OwnChannels
from tickmesh.edge.session import Subscribe

SETUPS = ("off", "tap", "audit")


class _Conn:
    """What OwnChannels reads of a connection (the bench has no transport)."""

    closing = None

    def __init__(self, user: str, n: int) -> None:
        self.user = user
        self.conn_id = f"c-{user}-{n}"
        self.transport = "ws"
        self.outbox = Outbox(max_frames=4096, max_bytes=64 << 20)


def build(setup: str, users: int, conns: int) -> tuple[Hub, list[_Conn], TradeAudit, list[tuple[str, bytes]]]:
    hub = Hub()
    audit = TradeAudit(edge="bench", flush_s=1.0, max_records=10_000_000, enabled=setup == "audit")
    everyone: list[_Conn] = []
    payloads = []
    for u in range(users):
        user = f"u{u}"
        subject = user_subject(Kind.TRADES, user)
        for n in range(conns):
            conn = _Conn(user, n)
            sink = conn.outbox
            if setup != "off":
                own = OwnChannels(conn, audit=audit, hold_s=2.0)  # type: ignore[arg-type]
                sink = own.sink(Subscribe(None, "trades", subject, False))
                sink.live("1", 0)
            hub.add(subject, "trades", sink, conflate=False)
            everyone.append(conn)
        payloads.append(
            (
                subject,
                orjson.dumps(
                    {
                        "exec_id": f"x-{u}",
                        "order_id": f"o-{u}",
                        "client_order_id": f"c-{u}",
                        "user": user,
                        "symbol": "AAPL",
                        "side": "buy",
                        "order_type": "market",
                        "status": "filled",
                        "quantity": "1",
                        "price": "187.20",
                        "ts": 1_795_000_000_000_000,
                    }
                ),
            )
        )
    return hub, everyone, audit, payloads


def one_round(hub: Hub, conns: list[_Conn], payloads: list[tuple[str, bytes]], seq: int) -> float:
    started = time.perf_counter()
    for subject, payload in payloads:
        seq += 1
        hub.publish(subject, seq, payload)
    for conn in conns:
        conn.outbox.drain()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=2000)
    p.add_argument("--conns", type=int, default=2, help="connections per user, each subscribing to trades")
    p.add_argument("--rounds", type=int, default=50)
    args = p.parse_args(argv)
    built = {s: build(s, args.users, args.conns) for s in SETUPS}
    deliveries = args.users * args.conns
    times: dict[str, list[float]] = {s: [] for s in SETUPS}
    gc.disable()
    try:
        for r in range(args.rounds):
            for s in SETUPS:
                hub, conns, audit, payloads = built[s]
                times[s].append(one_round(hub, conns, payloads, r * args.users))
                if s == "audit" and r < args.rounds - 1:
                    audit._buf.clear()  # keep the buffer's growth out of the rounds
        audit = built["audit"][2]
        records = list(audit._buf)
        started = time.perf_counter()
        audit.batches(records, time.time_ns() // 1000)
        batch_ns = (time.perf_counter() - started) / max(1, len(records)) * 1e9
    finally:
        gc.enable()
    best = {s: min(times[s]) / deliveries * 1e9 for s in SETUPS}
    ns = {s: statistics.median(times[s]) / deliveries * 1e9 for s in SETUPS}
    print(
        f"{deliveries} deliveries per round ({args.users} users x {args.conns} connections), {args.rounds} rounds "
        "(best round; median in brackets)"
    )
    for s in SETUPS:
        print(
            f"  {s:<6} {best[s]:7.0f} ns per delivery [{ns[s]:.0f}]   ratio to off {best[s] / best['off']:.2f} "
            f"[{ns[s] / ns['off']:.2f}]"
        )
    print(
        f"  audit cost on the delivery path: {best['audit'] - best['off']:.0f} ns per delivery "
        f"[{ns['audit'] - ns['off']:.0f}] (of which the tap {best['tap'] - best['off']:.0f} ns)"
    )
    print(f"  background writer: {batch_ns:.0f} ns per record to build trade_audit messages ({len(records)} records)")


if __name__ == "__main__":
    main()
