import json
import urllib.request

import pytest

from tests.support.natsserver import NatsServer
from tests.support.procs import EdgeProcess


@pytest.fixture
def nats_mon(tmp_path):
    """nats-server with its monitoring port, to look at the edge's subscriptions from outside."""
    server = NatsServer(tmp_path / "nats", monitor=True).start()
    server.monitor = f"http://127.0.0.1:{server.monitor_port}"
    try:
        yield server
    finally:
        server.stop()


ENGINES = ("direct", "quart")


def pytest_configure(config):
    config.addinivalue_line("markers", "engines(*names): run the edge tests only on these WebSocket engines")


def pytest_generate_tests(metafunc):
    """Every test that starts an edge runs on both WebSocket engines (``EDGE_WS_ENGINE``), unless
    it is marked ``@pytest.mark.engines(...)``."""
    if "engine" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("engines")
        metafunc.parametrize("engine", marker.args if marker else ENGINES)


@pytest.fixture
def edge_factory(nats_mon, tmp_path, engine):
    """Start edges with given settings against ``nats_mon``; all are stopped after the test."""
    started = []

    def start(**env):
        env.setdefault("EDGE_WS_ENGINE", engine)
        proc = EdgeProcess(nats_mon.url, tmp_path / "edges", **env)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def edge(edge_factory):
    return edge_factory(EDGE_MAX_FRAME_BYTES="1000", EDGE_HARD_FRAME_BYTES="20000")


def edge_subjects(nats_mon) -> list[str]:
    with urllib.request.urlopen(f"{nats_mon.monitor}/connz?subs=1") as resp:
        conns = json.load(resp)["connections"]
    return sorted(
        s
        for c in conns
        if c.get("name") == "tickmesh-edge"
        for s in c.get("subscriptions_list", [])
        if s.startswith("tm.tick.") or s.endswith(".portfolio")
    )
