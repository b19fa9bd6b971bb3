"""The processes a soak runs against: NATS with JetStream, the services, and two edges on fixed
ports that the soak restarts, each a child process with its log in the soak's folder. Process
figures (RSS, descriptors, threads) are read from ``/proc``; the edge's own view (open
connections, asyncio tasks) from its ``/metrics``."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

SERVICES = ("market-feed", "portfolio-valuer", "broker", "notifier", "announcer")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ProcStats:
    rss_mib: float
    fds: int
    threads: int


def proc_stats(pid: int) -> ProcStats | None:
    """RSS, open descriptors and threads of ``pid`` from /proc; None once it has exited."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        return ProcStats(rss / 1024, len(os.listdir(f"/proc/{pid}/fd")), len(os.listdir(f"/proc/{pid}/task")))
    except (FileNotFoundError, ProcessLookupError, StopIteration):
        return None


class Child:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], folder: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log = folder / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def stop(self, timeout: float = 20) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


class Edge(Child):
    def __init__(self, name: str, port: int, env: dict[str, str], folder: Path) -> None:
        super().__init__(name, [sys.executable, "-m", "tickmesh", "edge"], dict(env, EDGE_PORT=str(port)), folder)
        self.port = port
        self.url = f"ws://127.0.0.1:{port}/ws"
        self.http = f"http://127.0.0.1:{port}"
        self.generation = 0  # how many times it was (re)started

    def start(self) -> None:
        super().start()
        self.generation += 1

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.http}/readyz", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def gauges(self) -> dict[str, float]:
        """Open connections and asyncio tasks, as the edge reports them on /metrics."""
        out = {"connections": 0.0, "tasks": -1.0}
        with urllib.request.urlopen(f"{self.http}/metrics", timeout=5) as resp:
            for line in resp.read().decode().splitlines():
                if line.startswith("tickmesh_edge_connections{"):
                    out["connections"] += float(line.rsplit(" ", 1)[1])
                elif line.startswith("tickmesh_edge_asyncio_tasks "):
                    out["tasks"] = float(line.rsplit(" ", 1)[1])
        return out


class Stack:
    """NATS, the services and two edges (``a`` is the one restarted), under ``folder``."""

    def __init__(self, folder: Path, secret: str) -> None:
        from tickmesh.ops.up import nats_server_binary

        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.nats_port = free_port()
        self.nats_url = f"nats://127.0.0.1:{self.nats_port}"
        env = dict(
            os.environ,
            NATS_URL=self.nats_url,
            TICKMESH_JWT_SECRET=secret,
            TICKMESH_LOG_FORMAT="json",
            TICKMESH_HOME=str(folder),
        )
        for key in ("EDGE_PORT", "EDGE_TLS_CERT_FILE", "EDGE_TLS_KEY_FILE", "EDGE_TLS_CLIENT_CA_FILE"):
            env.pop(key, None)
        self.env = env
        self.nats = Child(
            "nats",
            [
                nats_server_binary(),
                "-a",
                "127.0.0.1",
                "-p",
                str(self.nats_port),
                "-js",
                "-sd",
                str(folder / "jetstream"),
            ],
            env,
            folder,
        )
        self.services = [Child(n, [sys.executable, "-m", "tickmesh", "service", n], env, folder) for n in SERVICES]
        edge_env = dict(
            env,
            EDGE_DRAIN_DEADLINE_S="5",
            EDGE_DRAIN_SPREAD_MS="3000",
            EDGE_MAX_CONNS_PER_USER="100",
            EDGE_MAX_CONNS_PER_IP="20000",
            EDGE_CMD_RATE="50",
            EDGE_CMD_BURST="100",
        )
        self.a = Edge("edge-a", free_port(), edge_env, folder)
        self.b = Edge("edge-b", free_port(), edge_env, folder)
        self.edges = [self.a, self.b]

    async def start(self, accounts: dict) -> None:
        from tickmesh.services.portfolio_valuer.demo import seed_accounts

        self.nats.start()
        await self._wait_port(self.nats_port)
        import nats

        from tickmesh import streams

        nc = await nats.connect(self.nats_url)
        try:
            js = nc.jetstream()
            await streams.ensure(js)
            await seed_accounts(await js.key_value(streams.HOLDINGS_BUCKET), accounts)
        finally:
            await nc.close()
        for child in self.services:
            child.start()
        for edge in self.edges:
            edge.start()
        await self.wait_ready(self.a)
        await self.wait_ready(self.b)

    async def _wait_port(self, port: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.1)
        raise TimeoutError(f"nothing listens on {port}")

    async def wait_ready(self, edge: Edge, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await asyncio.to_thread(edge.ready):
                return
            if edge.proc is not None and edge.proc.poll() is not None:
                raise RuntimeError(f"{edge.name} exited with {edge.proc.returncode}; see {edge.log}")
            await asyncio.sleep(0.2)
        raise TimeoutError(f"{edge.name} not ready; see {edge.log}")

    async def restart(self, edge: Edge) -> float:
        """SIGTERM (the edge drains: clients are told to reconnect elsewhere), then start it
        again on the same port; returns how long it was away."""
        started = time.monotonic()
        await asyncio.to_thread(edge.stop)
        edge.start()
        await self.wait_ready(edge)
        return time.monotonic() - started

    def errors_logged(self) -> dict[str, list[str]]:
        """Error lines and tracebacks in every child's log."""
        out = {}
        for child in [self.nats, *self.services, *self.edges]:
            if not child.log.exists() or child is self.nats:
                continue
            lines = [
                ln
                for ln in child.log.read_text(errors="replace").splitlines()
                if '"level":"error"' in ln or ln.startswith("Traceback")
            ]
            if lines:
                out[child.name] = lines[:5]
        return out

    def stop(self) -> None:
        for child in [*self.edges, *reversed(self.services), self.nats]:
            child.stop()
