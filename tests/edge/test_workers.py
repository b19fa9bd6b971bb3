"""``tickmesh edge --workers N``: several edge processes on one port (SO_REUSEPORT)."""

import os
import signal
import time

import pytest

from tests.edge.test_auth import closed_with
from tests.support.timing import t
from tests.support.tokens import token
from tests.support.wsclient import Client
from tickmesh.contracts.codes import CloseCode

pytestmark = pytest.mark.engines("direct")


def workers_of(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as fh:
        return [int(p) for p in fh.read().split()]


def process_of(conn_id: str) -> str:
    return conn_id.split("-")[0]  # each edge process has its own conn_id prefix


def wait_listening(edge, workers: int) -> None:
    """Until every worker logged that it listens (the first one may be ready before the other)."""
    deadline = time.monotonic() + t(20)
    while edge.output().count("Running on http://") < workers:
        assert time.monotonic() < deadline, edge.output()[-2000:]
        time.sleep(0.05)


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[1][0] in "ZX"
    except OSError:
        return True


async def test_two_workers_share_the_port_and_one_survives_the_other(edge_factory):
    edge = edge_factory(EDGE_WORKERS="2")
    wait_listening(edge, 2)
    clients = [await Client.login(edge.ws_url, token(f"u{i}")) for i in range(24)]
    assert len({process_of(c.welcome["conn_id"]) for c in clients}) == 2  # the kernel spread them
    for c in clients:
        await c.close()

    victim = workers_of(edge.pid)[0]
    os.kill(victim, signal.SIGKILL)
    while not gone(victim):
        time.sleep(0.02)
    # Every new connection lands on a live worker; none is refused or lost.
    clients = [await Client.login(edge.ws_url, token(f"v{i}")) for i in range(12)]
    for c in clients:
        assert (await c.request("ping"))[0]["op"] == "pong"
        await c.close()


async def test_sigterm_drains_every_worker(edge_factory):
    edge = edge_factory(EDGE_WORKERS="2", EDGE_DRAIN_DEADLINE_S="1", EDGE_DRAIN_SPREAD_MS="500")
    wait_listening(edge, 2)
    clients = [await Client.login(edge.ws_url, token(f"u{i}")) for i in range(16)]
    assert len({process_of(c.welcome["conn_id"]) for c in clients}) == 2
    edge.proc.send_signal(signal.SIGTERM)
    for c in clients:
        frame = await c.recv(5)
        assert frame["op"] == "reconnect" and 0 <= frame["after_ms"] <= 500
    for c in clients:
        assert await closed_with(c, timeout=10) == CloseCode.SHUTDOWN
    assert edge.proc.wait(t(15)) == 0
