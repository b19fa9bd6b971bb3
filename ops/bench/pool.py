"""The coordinator's side of the load clients: start worker processes, spread work, merge results.

Connections are dealt round-robin over the workers (connection ``i`` goes to worker
``i % workers``), so every worker holds the same mix of channels and slow consumers. Each worker
must stay under the per-process descriptor limit; :func:`workers_needed` picks the count.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from typing import Any

from . import ipc
from .client import process_main
from .latency import Histogram

PER_WORKER_MAX = 18_000  # connections per load-client process (hard descriptor limit is 20,000)
PER_SOURCE_MAX = 25_000  # connections per 127.0.0.x source address (~28,000 ephemeral ports)


def workers_needed(clients: int, requested: int) -> int:
    return max(requested, -(-clients // PER_WORKER_MAX), 1)


def source_addresses(clients: int, count: int = 0) -> list[str]:
    """Loopback source addresses so that no address pair runs out of ephemeral ports: one per
    :data:`PER_SOURCE_MAX` clients, or ``count`` of them when given (``--source-addresses``,
    to try the spreading at a small N)."""
    return [f"127.0.0.{i + 1}" for i in range(min(250, count or max(1, -(-clients // PER_SOURCE_MAX))))]


class Pool:
    def __init__(self, workers: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._pipes = []
        self.procs = []
        self._seq = 0
        self._locks = [asyncio.Lock() for _ in range(workers)]
        for number in range(workers):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=process_main, args=(child, number), daemon=True, name=f"bench-client-{number}")
            proc.start()
            child.close()
            self._pipes.append(parent)
            self.procs.append(proc)

    def alive(self) -> bool:
        return all(p.is_alive() for p in self.procs)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]

    async def _call(self, number: int, op: str, **args: Any) -> dict:
        """One command and its reply. Replies carry the command's number, so a reply left in the
        pipe by a cancelled caller (the progress line) is skipped, never mistaken for this one."""
        self._seq += 1
        seq = self._seq
        async with self._locks[number]:
            pipe = self._pipes[number]
            pipe.send({"op": op, "seq": seq, **args})
            while True:
                reply = await ipc.recv(pipe)
                if reply.pop("seq", None) == seq:
                    break
        if "error" in reply:
            raise RuntimeError(f"load client {number}: {op} failed: {reply['error']}")
        return reply

    async def each(self, op: str, **args: Any) -> list[dict]:
        """Send the same command to every worker; their replies, in worker order."""
        return await asyncio.gather(*(self._call(n, op, **args) for n in range(len(self.procs))))

    async def connect(self, conns: list[tuple[int, list[str], bool]], **args: Any) -> dict:
        """Open ``conns`` ((index, channels, slow) each), dealt over the workers; merged counts."""
        n = len(self.procs)
        shares = [conns[i::n] for i in range(n)]
        replies = await asyncio.gather(*(self._call(i, "connect", conns=shares[i], **args) for i in range(n)))
        out = {"connected": 0, "failed": 0, "ready": 0, "seconds": 0.0, "errors": {}}
        for r in replies:
            for key in ("connected", "failed", "ready"):
                out[key] += r[key]
            out["seconds"] = max(out["seconds"], r["seconds"])
            for err, count in r["errors"].items():
                out["errors"][err] = out["errors"].get(err, 0) + count
        return out

    async def peek(self) -> dict:
        replies = await self.each("peek")
        return {
            key: (max(r[key] for r in replies) if key.startswith("last_") else sum(r[key] for r in replies))
            for key in replies[0]
        }

    async def collect(self) -> dict:
        replies = await self.each("collect")
        hist = Histogram()
        out: dict[str, Any] = {
            "received": 0,
            "ready": 0,
            "open": 0,
            "measured": 0,
            "closed_by_server": 0,
            "close_codes": {},
            "errors": {},
        }
        for r in replies:
            hist.merge(Histogram.from_dict(r["hist"]))
            for key in ("received", "ready", "open", "measured", "closed_by_server"):
                out[key] += r[key]
            for field in ("close_codes", "errors"):
                for k, v in r[field].items():
                    out[field][k] = out[field].get(k, 0) + v
            if "track" in r:  # the storm's positions: counts summed, reasons merged
                track = out.setdefault("track", {})
                for k, v in r["track"].items():
                    if isinstance(v, list):
                        track.setdefault(k, []).extend(v)
                    elif isinstance(v, dict):
                        merged = track.setdefault(k, {})
                        for reason, count in v.items():
                            merged[reason] = merged.get(reason, 0) + count
                    else:
                        track[k] = track.get(k, 0) + v
        out["hist"] = hist
        return out

    async def stop(self) -> None:
        try:
            await asyncio.wait_for(self.each("exit"), 10)
        except Exception:  # a stuck worker is terminated below anyway
            pass
        for proc in self.procs:
            proc.join(2)
            if proc.is_alive():
                proc.terminate()
                proc.join(2)
