"""What recovery costs: the time to replay N missed events to one resubscribing client.

Runs a real nats-server and a real edge, stores N events for one user, then measures, in the same
run, (1) a WebSocket client resubscribing with ``since`` until the N-th replayed message has
arrived, and (2) the peer: a plain JetStream ordered consumer reading the same N messages
straight from NATS (the floor: what the edge adds on top is the ratio).

    python -m tickmesh.ops.bench.recovery [--events 10000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nats
import orjson
import websockets
from nats.js.api import DeliverPolicy

from tickmesh import devtokens, streams
from tickmesh.contracts.channels import Kind, user_subject

SECRET = "bench-recovery-secret-0123456789abcdef0123"


async def _edge_replay(ws_url: str, token: str, epoch: str, count: int) -> float:
    async with websockets.connect(ws_url, max_size=None, compression=None) as ws:
        await ws.send(orjson.dumps({"op": "auth", "id": 1, "token": token}).decode())
        await ws.recv()
        started = time.perf_counter()
        await ws.send(
            orjson.dumps({"op": "sub", "id": 2, "ch": "notifications", "since": {"epoch": epoch, "seq": 0}}).decode()
        )
        got = 0
        while got < count:
            obj = orjson.loads(await ws.recv())
            for frame in obj if isinstance(obj, list) else [obj]:
                if frame.get("op") == "msg":
                    got += 1
        return time.perf_counter() - started


async def _peer_replay(url: str, subject: str, count: int) -> float:
    nc = await nats.connect(url)
    js = nc.jetstream()
    done = asyncio.Event()
    got = 0

    async def on(msg):
        nonlocal got
        orjson.loads(msg.data)
        got += 1
        if got >= count:
            done.set()

    started = time.perf_counter()
    sub = await js.subscribe(subject, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL, cb=on)
    await done.wait()
    elapsed = time.perf_counter() - started
    await sub.unsubscribe()
    await nc.close()
    return elapsed


async def run(events: int, rounds: int) -> dict:
    from tests.support.natsserver import NatsServer  # the same harness the tests use
    from tests.support.procs import EdgeProcess

    work = Path(tempfile.mkdtemp(prefix="tickmesh-recovery-"))
    server = NatsServer(work / "nats").start()
    edge = EdgeProcess(server.url, work / "edge", TICKMESH_JWT_SECRET=SECRET, TICKMESH_LOG_LEVEL="WARNING")
    try:
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await streams.ensure(js)
        subject = user_subject(Kind.NOTIFICATIONS, "alice")
        body = {
            "id": "n",
            "user": "alice",
            "kind": "trade",
            "severity": "info",
            "title": "Bought 10 AAPL at 187.20",
            "ts": 1_795_000_000_000_000,
        }
        for i in range(0, events, 500):
            await asyncio.gather(
                *(
                    js.publish(subject, json.dumps(dict(body, id=f"n{j}")).encode())
                    for j in range(i, min(i + 500, events))
                )
            )
        info = await js.stream_info(streams.USER_EVENTS)
        epoch = str(int(info.created.timestamp() * 1_000_000))
        await nc.close()
        token = devtokens.mint("alice", secret=SECRET)
        edge_times, peer_times = [], []
        for _ in range(rounds):
            edge_times.append(await _edge_replay(edge.ws_url, token, epoch, events))
            peer_times.append(await _peer_replay(server.url, subject, events))
        e, p = statistics.median(edge_times), statistics.median(peer_times)
        return {
            "events": events,
            "rounds": rounds,
            "edge_s": round(e, 3),
            "peer_s": round(p, 3),
            "edge_events_per_s": round(events / e),
            "peer_events_per_s": round(events / p),
            "ratio_edge_over_peer": round(e / p, 2),
            "cpus": os.cpu_count(),
        }
    finally:
        edge.stop()
        server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    result = asyncio.run(run(args.events, args.rounds))
    print(f"{'':24}{'time (median)':>16}{'events/s':>12}")
    print(f"{'edge replay (WS)':24}{result['edge_s']:>15.3f}s{result['edge_events_per_s']:>12}")
    print(f"{'peer: JetStream direct':24}{result['peer_s']:>15.3f}s{result['peer_events_per_s']:>12}")
    print(f"edge / peer = {result['ratio_edge_over_peer']}x")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
