"""Real tickmesh processes for tests: an edge, a service, or the whole stack via ``tickmesh up``."""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .timing import t

_RUNNING = re.compile(r"Running on https?://127\.0\.0\.1:(\d+)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(
    url: str, timeout: float, proc: subprocess.Popen | None = None, context: ssl.SSLContext | None = None
) -> None:
    deadline = time.monotonic() + t(timeout)
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1, context=context) as resp:
                if resp.status == 200:
                    return
        except Exception as exc:  # not up yet
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"{url} not ready: {last}")


class Proc:
    """A child process with its output in a log file (read it when a test fails)."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._fh = open(log, "wb")
        self.proc = subprocess.Popen(argv, env=env, stdout=self._fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        if not self._fh.closed:
            self._fh.flush()
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(t(timeout))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._fh.close()
        return self.proc.returncode


def base_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("NATS_URL", None)
    env["TICKMESH_LOG_FORMAT"] = "json"
    env.update(extra)
    return env


class EdgeProcess(Proc):
    """An edge on a port it picks itself (EDGE_PORT=0, read back from its log), so no other
    process can take the port between choosing and binding it."""

    def __init__(
        self,
        nats_url: str,
        workdir: Path,
        *,
        port: int | None = None,
        context: ssl.SSLContext | None = None,
        ready: bool = True,
        **env: str,
    ) -> None:
        """``context``: the client TLS context that trusts the edge (and may carry a client
        certificate) when the edge serves TLS (``EDGE_TLS_CERT_FILE``). ``ready=False``: return
        once it listens, without waiting for ``/readyz`` (an edge whose NATS is not there yet)."""
        from .tokens import SECRET

        workdir.mkdir(parents=True, exist_ok=True)
        env.setdefault("TICKMESH_JWT_SECRET", SECRET)
        super().__init__(
            [sys.executable, "-m", "tickmesh", "edge"],
            base_env(NATS_URL=nats_url, EDGE_PORT=str(port or 0), **env),
            workdir / f"edge-{time.monotonic_ns()}.log",
        )
        self.scheme = "https" if env.get("EDGE_TLS_CERT_FILE") else "http"
        self.port = port or self._listening_port()
        if ready:
            wait_http(f"{self.http}/readyz", 20, self.proc, context)

    def _listening_port(self) -> int:
        deadline = time.monotonic() + t(20)
        while time.monotonic() < deadline:
            m = _RUNNING.search(self.output())
            if m:
                return int(m.group(1))
            if self.proc.poll() is not None:
                raise RuntimeError(f"edge exited with {self.proc.returncode}:\n{self.output()[-2000:]}")
            time.sleep(0.05)
        raise TimeoutError("edge did not start listening")

    @property
    def http(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.scheme == 'https' else 'ws'}://127.0.0.1:{self.port}/ws"
