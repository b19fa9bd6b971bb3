"""What presence and shared watch-lists cost: a 10,000-member topic, and a watch-list edit end to end.

    python -m tickmesh.ops.bench.presence [--members 10000] [--viewers 200] [--churn 1000]
                                           [--seconds 10] [--edits 200] [--wl-viewers 50]

1. **Core** (no I/O): the roster of one topic with ``--members`` members: the cost of taking in
   a member record, of a flush (one delta, whatever the churn since the last one), and the bytes
   of the snapshot and of the deltas. The fan-out of a delta is one encoded frame for every
   subscriber, so what each change costs does not grow with the members: no O(members²).
2. **One edge, 10,000 members**: a real nats-server and a real edge; ``--members`` members are
   written into the presence bucket by four synthetic edges (leases and records, as edges write
   them), ``--viewers`` WebSocket clients watch ``presence:symbol.AAPL``. Measured: the time
   until every viewer counts them all, then ``--churn`` membership changes a second for
   ``--seconds``: deltas a second per viewer (at most 1000 / EDGE_PRESENCE_FLUSH_MS), bytes per
   delta, the edge's CPU, and the latency of a change of a listed member to every viewer.
3. **Watch-list edit end to end**: nats-server, the edge and ``tickmesh service watchlists``; one
   editor and ``--wl-viewers`` viewers, all on WebSockets. For ``--edits`` edits, one after the
   other: command sent -> the editor's ``ok``, and -> the new version at the last viewer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nats
import orjson
import websockets

from tickmesh import devtokens
from tickmesh.presence.directory import Directory
from tickmesh.presence.records import BUCKET, Record, lease_key, lease_value, member_key

SECRET = "bench-presence-secret-0123456789abcdef012345"
TOPIC = "symbol.AAPL"
T0 = 1_795_630_000_000_000


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


# -- 1. the core ---------------------------------------------------------------------------


def core(members: int) -> dict:
    d = Directory(limit=100, flush_interval=0.25)
    d.lease("e1", True)
    roster = d.open(TOPIC)
    recs = [Record(f"User {i}", 1, {"viewing": "chart"}, T0 + i, T0 + i) for i in range(members)]
    started = time.perf_counter()
    for i, rec in enumerate(recs):
        d.record(TOPIC, "e1", f"user{i:05d}", rec)
    put_us = (time.perf_counter() - started) / members * 1e6
    [first] = d.flush(0.0)
    snapshot_bytes = len(roster.snapshot()[1])
    # Churn: half leave and rejoin unlisted, some listed members leave: one flush per 250 changes.
    rng = random.Random(7)
    changes, flush_s, deltas = 0, 0.0, []
    now = 1.0
    started = time.perf_counter()
    for _ in range(40):
        for _ in range(250):
            i = rng.randrange(members)
            d.record(TOPIC, "e1", f"user{i:05d}", None if rng.random() < 0.5 else recs[i])
            changes += 1
        t = time.perf_counter()
        out = d.flush(now)
        flush_s += time.perf_counter() - t
        deltas += [len(x.payload) for x in out]
        now += 0.25
    churn_s = time.perf_counter() - started - flush_s
    return {
        "members": members,
        "record_apply_us": round(put_us, 2),
        "change_apply_us": round(churn_s / changes * 1e6, 2),
        "flush_us": round(flush_s / 40 * 1e6, 1),
        "snapshot_bytes": snapshot_bytes,
        "first_delta_bytes": len(first.payload),
        "delta_bytes_mean": round(statistics.mean(deltas)),
        "delta_bytes_max": max(deltas),
    }


# -- WebSocket clients ---------------------------------------------------------------------


class Viewer:
    """A client that counts the presence (or watch-list) frames it receives."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.count = 0
        self.frames = 0
        self.bytes = 0
        self.version = 0
        self.seen: dict[str, float] = {}  # user joined or left -> when this client saw it
        self.changed = asyncio.Event()

    @classmethod
    async def open(cls, url: str, user: str, sub: str | None) -> Viewer:
        ws = await websockets.connect(url, max_size=None, compression=None)
        await ws.send(orjson.dumps({"op": "auth", "id": 1, "token": devtokens.mint(user, secret=SECRET)}).decode())
        await ws.recv()
        v = cls(ws)
        if sub:
            await ws.send(orjson.dumps({"op": "sub", "id": 2, "ch": sub}).decode())
        return v

    async def run(self, replies: dict | None = None) -> None:
        try:
            async for raw in self.ws:
                now = time.perf_counter()
                obj = orjson.loads(raw)
                for f in obj if isinstance(obj, list) else [obj]:
                    if f.get("op") == "msg":
                        self.frames += 1
                        self.bytes += len(orjson.dumps(f))
                        data = f["data"]
                        if "count" in data:
                            self.count = data["count"]
                            for m in data.get("joins", []):
                                self.seen.setdefault("+" + m["user"], now)
                            for u in data.get("leaves", []):
                                self.seen.setdefault("-" + u, now)
                        self.version = max(self.version, f["seq"])
                        self.changed.set()
                    elif replies is not None and f.get("id") in replies:
                        replies.pop(f["id"]).set_result((now, f))
        except websockets.ConnectionClosed:
            pass


async def until(check, timeout: float) -> float:
    started = time.perf_counter()
    while not check():
        if time.perf_counter() - started > timeout:
            raise TimeoutError("bench condition not met in time")
        await asyncio.sleep(0.005)
    return time.perf_counter() - started


# -- 2. one edge, a 10,000-member topic ----------------------------------------------------


async def big_topic(
    url: str, ws_url: str, edge_pid: int, members: int, viewers: int, churn: int, seconds: float
) -> dict:
    from tickmesh.ops.bench import procstats

    nc = await nats.connect(url)
    js = nc.jetstream()
    edges = [f"edge-bench{i}" for i in range(4)]

    async def leases() -> None:
        while True:
            for e in edges:
                await js.publish(
                    f"$KV.{BUCKET}.{lease_key(e)}", lease_value(e, 5.0, time.time_ns() // 1000), msg_ttl=10
                )
            await asyncio.sleep(5)

    keeper = asyncio.ensure_future(leases())
    await asyncio.sleep(0.2)
    clients = [await Viewer.open(ws_url, f"viewer{i}", f"presence:{TOPIC}") for i in range(viewers)]
    tasks = [asyncio.ensure_future(c.run()) for c in clients]
    await until(lambda: all(c.frames for c in clients), 30)

    def put(i: int, present: bool):
        key = f"$KV.{BUCKET}.{member_key(edges[i % 4], TOPIC, f'm{i:05d}')}"
        if present:
            rec = Record(f"Member {i}", 1, {"viewing": "chart"}, T0 + i, time.time_ns() // 1000)
            return js.publish_async(key, rec.encode())
        return js.publish_async(key, b"", headers={"KV-Operation": "PURGE", "Nats-Rollup": "sub"}, msg_ttl=60)

    before = procstats.sample([edge_pid])
    started = time.perf_counter()
    for lo in range(0, members, 1000):
        await asyncio.gather(*[await put(i, True) for i in range(lo, min(lo + 1000, members))])
    fill_s = await until(lambda: all(c.count >= members for c in clients), 60) + (time.perf_counter() - started)
    fill_frames = statistics.mean(c.frames for c in clients) - 1
    after = procstats.sample([edge_pid])
    fill_cpu = procstats.cpu_used(before, after, [edge_pid])

    # Churn: unlisted members leave and come back at `churn` changes a second; every second a
    # listed member (m00000..) leaves, to time a visible change to every viewer.
    for c in clients:
        c.frames, c.bytes = 0, 0
    rng = random.Random(3)
    present = set(range(members))
    probe_lat: list[float] = []
    before = procstats.sample([edge_pid])
    started = time.perf_counter()
    tick = 0
    while time.perf_counter() - started < seconds:
        batch = []
        for _ in range(churn // 10):
            i = rng.randrange(200, members)
            batch.append(await put(i, i not in present))
            present.symmetric_difference_update({i})
        if tick % 10 == 0:
            probe = tick // 10
            sent = time.perf_counter()
            batch.append(await put(probe, False))
        await asyncio.gather(*batch)
        if tick % 10 == 0:
            key = f"-m{probe:05d}"
            asyncio.ensure_future(_latency(clients, key, sent, probe_lat))
        tick += 1
        await asyncio.sleep(max(0.0, started + tick * 0.1 - time.perf_counter()))
    elapsed = time.perf_counter() - started
    await asyncio.sleep(1.0)
    after = procstats.sample([edge_pid])
    frames = [c.frames for c in clients]
    result = {
        "members": members,
        "viewers": viewers,
        "fill_s": round(fill_s, 2),
        "fill_deltas_per_viewer": round(fill_frames, 1),
        "fill_edge_cpu_s": round(fill_cpu, 2),
        "churn_per_s": churn,
        "churn_s": round(elapsed, 1),
        "deltas_per_s_per_viewer": round(statistics.mean(frames) / elapsed, 2),
        "bytes_per_delta": round(sum(c.bytes for c in clients) / max(1, sum(frames))),
        "edge_cpu_pct": round(procstats.cpu_used(before, after, [edge_pid]) / (elapsed + 1.0) * 100, 1),
        "change_to_all_viewers_ms_p50": round(pct(probe_lat, 0.5) * 1000, 1),
        "change_to_all_viewers_ms_p99": round(pct(probe_lat, 0.99) * 1000, 1),
    }
    keeper.cancel()
    for c in clients:
        await c.ws.close()
    for task in tasks:
        task.cancel()
    await nc.close()
    return result


async def _latency(clients: list[Viewer], key: str, sent: float, out: list[float]) -> None:
    try:
        await until(lambda: all(key in c.seen for c in clients), 10)
        out.append(max(c.seen[key] for c in clients) - sent)
    except TimeoutError:
        pass


# -- 3. a watch-list edit, end to end ------------------------------------------------------


async def watchlist_edits(ws_url: str, edits: int, viewers: int) -> dict:
    editor = await Viewer.open(ws_url, "owner", None)
    replies: dict[int, asyncio.Future] = {}
    editor_task = asyncio.ensure_future(editor.run(replies))
    rid = 100

    async def cmd(name: str, data: dict) -> tuple[float, dict]:
        nonlocal rid
        rid += 1
        fut = asyncio.get_running_loop().create_future()
        replies[rid] = fut
        await editor.ws.send(orjson.dumps({"op": "cmd", "id": rid, "name": name, "data": data}).decode())
        return await asyncio.wait_for(fut, 10)

    _, created = await cmd("watchlist.create", {"name": "bench", "symbols": ["AAPL", "MSFT"]})
    wl_id = created["data"]["watchlist"]["id"]
    names = [f"viewer{i}" for i in range(viewers)]
    for name in names:
        await cmd("watchlist.share", {"id": wl_id, "user": name, "role": "viewer"})
    clients = [await Viewer.open(ws_url, name, f"watchlist:{wl_id}") for name in names]
    tasks = [asyncio.ensure_future(c.run()) for c in clients]
    _, listed = await cmd("watchlist.history", {"id": wl_id})
    version = listed["data"]["changes"][0]["version"]
    await until(lambda: all(c.version >= version for c in clients), 30)
    ok_ms, all_ms, sizes = [], [], []
    for i in range(edits):
        op = {"op": "add" if i % 2 == 0 else "remove", "symbol": "NVDA"}
        before = [c.bytes for c in clients]
        sent = time.perf_counter()
        at, reply = await cmd("watchlist.edit", {"id": wl_id, "base": version, "ops": [op]})
        version = reply["data"]["watchlist"]["version"]
        ok_ms.append((at - sent) * 1000)
        await until(lambda version=version: all(c.version >= version for c in clients), 10)
        all_ms.append((time.perf_counter() - sent) * 1000)
        sizes.append(clients[0].bytes - before[0])
    for c in clients + [editor]:
        await c.ws.close()
    for task in tasks + [editor_task]:
        task.cancel()
    return {
        "edits": edits,
        "viewers": viewers,
        "ok_ms_p50": round(pct(ok_ms, 0.5), 2),
        "ok_ms_p99": round(pct(ok_ms, 0.99), 2),
        "all_viewers_ms_p50": round(pct(all_ms, 0.5), 2),
        "all_viewers_ms_p99": round(pct(all_ms, 0.99), 2),
        "update_frame_bytes": round(statistics.median(s for s in sizes if s)),
    }


async def run(args: argparse.Namespace) -> dict:
    from tests.support.natsserver import NatsServer  # the same harness the tests use
    from tests.support.procs import EdgeProcess, Proc, base_env

    result = {"core": core(args.members), "cpus": os.cpu_count()}
    work = Path(tempfile.mkdtemp(prefix="tickmesh-presence-bench-"))
    server = NatsServer(work / "nats").start()
    edge = EdgeProcess(
        server.url,
        work / "edge",
        TICKMESH_JWT_SECRET=SECRET,
        EDGE_MAX_CONNS_PER_IP="100000",
        EDGE_CMD_RATE="1000",
        EDGE_CMD_BURST="1000",
    )
    service = Proc(
        [sys.executable, "-m", "tickmesh", "service", "watchlists"],
        base_env(NATS_URL=server.url),
        work / "watchlists.log",
    )
    try:
        result["topic"] = await big_topic(
            server.url, edge.ws_url, edge.pid, args.members, args.viewers, args.churn, args.seconds
        )
        print(json.dumps({"core": result["core"], "topic": result["topic"]}), file=sys.stderr)
        deadline = time.monotonic() + 30
        while "watchlists running" not in service.output() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        result["watchlist"] = await watchlist_edits(edge.ws_url, args.edits, args.wl_viewers)
    finally:
        service.stop()
        edge.stop()
        server.stop()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--viewers", type=int, default=200)
    parser.add_argument("--churn", type=int, default=1000, help="membership changes a second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--edits", type=int, default=200)
    parser.add_argument("--wl-viewers", type=int, default=50, help="at most 50 (a list's members besides its owner)")
    args = parser.parse_args(argv)
    if not 1 <= args.wl_viewers <= 50:
        parser.error("--wl-viewers must be 1 to 50")
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
