"""How many ticks per second market-feed's hot path moves: ``Pump.emit`` → pipeline → publisher.

Not a test (pytest does not collect it): run it by hand to compare revisions of the hot path::

    .venv/bin/python -m tests.services.feed.bench_publish            # in-process, no NATS
    .venv/bin/python -m tests.services.feed.bench_publish --nats     # a real local nats-server

Without ``--nats`` the publisher's connection is :class:`NullConnection`, which exists because
the point is to time market-feed's own code, not the NATS client's buffering: it takes each
publish and does nothing. With ``--nats`` a real nats-server is started (the tests' fixture
class) and every tick goes over TCP. Each run emits the same ticks (200 symbols, increasing
``ts``) ``--repeat`` times and prints the best and median ticks/s, by the wall clock and by this
process's CPU time (steadier on a shared machine, and what the hot path costs). ``--ratio`` turns tracing on
(an in-memory exporter) with that head-sampling ratio; tracing is off otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from tickmesh.publish import Publisher
from tickmesh.services.market_feed.normalise import Tick
from tickmesh.services.market_feed.pipeline import Pipeline
from tickmesh.services.market_feed.pump import Pump

T0 = 1_772_460_000_000_000
SYMBOLS = [f"SYM{i}" for i in range(200)]


class NullConnection:
    """Takes publishes and drops them (see the module docstring for why it exists)."""

    async def publish(self, subject, payload=b"", reply="", headers=None) -> None:
        return None


def make_ticks(n: int, offset: int) -> list[Tick]:
    return [
        Tick(
            symbol=SYMBOLS[i % len(SYMBOLS)],
            last=f"{100 + (i % 997) / 100:.2f}",
            ts=T0 + offset + i,
            ingest_ts=T0 + offset + i,
            provider="bench",
            bid="99.99",
            ask="100.01",
            size="1",
        )
        for i in range(n)
    ]


async def one_round(nc, n: int, offset: int) -> tuple[float, float]:
    """``(ticks per wall-clock second, ticks per CPU second of this process)``."""
    pump = Pump(Pipeline(stale_after=30.0), Publisher(nc))
    ticks = make_ticks(n, offset)
    started, cpu = time.perf_counter(), time.process_time()
    for tick in ticks:
        await pump.emit(tick)
    if hasattr(nc, "flush"):
        await nc.flush()
    return n / (time.perf_counter() - started), n / (time.process_time() - cpu)


async def main(args: argparse.Namespace) -> None:
    if args.ratio is not None:
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        from tickmesh import tracing

        tracing.setup(
            "bench",
            exporter=InMemorySpanExporter(),
            set_global=False,
            environ={"TICKMESH_TRACE_SAMPLE_RATIO": str(args.ratio)},
        )
    server = None
    if args.nats:
        import nats

        from tests.support.natsserver import NatsServer

        server = NatsServer(Path(tempfile.mkdtemp(prefix="bench-nats-"))).start()
        nc = await nats.connect(server.url, pending_size=64 * 1024 * 1024)
    else:
        nc = NullConnection()
    try:
        rates = [await one_round(nc, args.ticks, r * args.ticks) for r in range(args.repeat)]
    finally:
        if server is not None:
            await nc.close()
            server.stop()
    where = "nats-server" if args.nats else "no NATS"
    tracing_note = f"tracing ratio {args.ratio}" if args.ratio is not None else "tracing off"
    wall, cpu = sorted(r[0] for r in rates), sorted(r[1] for r in rates)
    print(
        f"{where}, {tracing_note}: wall best {wall[-1]:,.0f} median {wall[len(wall) // 2]:,.0f} ticks/s; "
        f"CPU best {cpu[-1]:,.0f} median {cpu[len(cpu) // 2]:,.0f} ticks/s ({args.repeat} rounds of {args.ticks})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ticks", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--nats", action="store_true", help="publish to a real local nats-server")
    parser.add_argument("--ratio", type=float, default=None, help="tracing on, with this sample ratio")
    asyncio.run(main(parser.parse_args()))
