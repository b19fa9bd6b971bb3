"""``tickmesh up --nats-cluster 3 --edges 2``: the failover setup on one machine, in one command."""

from __future__ import annotations

import json
import random
import signal
import socket
import sys

import nats
import pytest

from tests.support.procs import Proc, base_env, wait_http
from tests.support.tokens import SECRET, token
from tests.support.wsclient import Client

pytestmark = pytest.mark.timeout(180)


def free_run(n: int) -> int:
    """The first of ``n`` consecutive free ports."""
    for _ in range(200):
        base = random.randint(20000, 60000 - n)
        try:
            socks = []
            for port in range(base, base + n):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no run of free ports")


async def test_up_runs_a_three_node_cluster_and_two_edges_and_stops_them_all(tmp_path):
    edge_port, nats_port, route_port = free_run(2), free_run(3), free_run(3)
    up = Proc(
        [sys.executable, "-m", "tickmesh", "up", "--nats-cluster", "3", "--edges", "2"],
        base_env(
            TICKMESH_HOME=str(tmp_path / "home"),
            EDGE_PORT=str(edge_port),
            TICKMESH_NATS_PORT=str(nats_port),
            TICKMESH_NATS_CLUSTER_PORT=str(route_port),
            TICKMESH_JWT_SECRET=SECRET,
        ),
        tmp_path / "up.log",
    )
    try:
        for port in (edge_port, edge_port + 1):
            wait_http(f"http://127.0.0.1:{port}/readyz", 90, up.proc)
        # The embedded cluster admits only the users tickmesh up made (NATS permissions): the admin.
        admin = json.loads((tmp_path / "home" / "nats" / "credentials.json").read_text())["admin"]
        nc = await nats.connect([f"nats://127.0.0.1:{nats_port + i}" for i in range(3)], user="admin", password=admin)
        info = await nc.jetstream().stream_info("TM_USER_EVENTS")
        assert info.config.num_replicas == 3 and len(info.cluster.replicas) == 2, info.cluster
        await nc.close()
        # Each edge serves the demo user's seeded portfolio.
        for port in (edge_port, edge_port + 1):
            client = await Client.login(f"ws://127.0.0.1:{port}/ws", token("alice"))
            reply, _ = await client.request("sub", ch="portfolio")
            assert reply["op"] == "ok", reply
            snapshot = await client.messages(1, timeout=30)
            assert snapshot[0]["data"]["user"] == "alice"
            await client.close()
    finally:
        code = up.stop(signal.SIGINT, timeout=30)
    assert code == 0, up.output()[-3000:]
    for port in (edge_port, nats_port, nats_port + 1, nats_port + 2):
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still served after stopping"
