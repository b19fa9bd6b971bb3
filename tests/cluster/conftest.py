"""A whole tickmesh deployment on this machine, as the Helm chart's cluster mode runs it: a
3-node NATS cluster with JetStream, streams and buckets replicated 3 times, two edges and the
broker as real processes, every one of them given all three NATS URLs.

Module-scoped, because a failover test is mostly waiting: each test restores what it broke
(a node restarted, an edge replaced on its port) before the next one runs.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.natsserver import NatsCluster
from tests.support.procs import EdgeProcess, Proc, base_env

CLUSTER_ENV = {
    "TICKMESH_STREAM_REPLICAS": "3",
    # Drains short enough for tests: clients are told to move within 0.5 s, closed after 3 s.
    "EDGE_DRAIN_SPREAD_MS": "500",
    "EDGE_DRAIN_DEADLINE_S": "3",
}


@dataclass
class Stack:
    workdir: Path
    nats: NatsCluster
    edges: list[EdgeProcess] = field(default_factory=list)
    broker: Proc | None = None

    def edge_urls(self) -> list[str]:
        return [e.ws_url for e in self.edges]

    def start_edge(self, port: int | None = None) -> EdgeProcess:
        return EdgeProcess(self.nats.url, self.workdir / "edges", port=port, **CLUSTER_ENV)

    def replace_edge(self, index: int) -> EdgeProcess:
        """A new edge process on the port of edge ``index`` (which must be stopped)."""
        self.edges[index] = self.start_edge(self.edges[index].port)
        return self.edges[index]

    def stop(self) -> None:
        for edge in self.edges:
            edge.stop()
        if self.broker is not None:
            self.broker.stop()
        self.nats.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("cluster")
    s = Stack(workdir, NatsCluster(workdir / "nats").start())
    try:
        s.edges = [s.start_edge(), s.start_edge()]  # each creates or updates the R3 streams first
        s.broker = Proc(
            [sys.executable, "-m", "tickmesh", "service", "broker"],
            base_env(NATS_URL=s.nats.url, **CLUSTER_ENV),
            workdir / "broker.log",
        )
        yield s
    finally:
        s.stop()
