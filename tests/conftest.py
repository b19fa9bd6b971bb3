from __future__ import annotations

import pytest

from tests.support.natsserver import NatsServer


@pytest.fixture
def nats_server(tmp_path):
    """A real nats-server with JetStream on a free port, stopped after the test."""
    server = NatsServer(tmp_path / "nats").start()
    try:
        yield server
    finally:
        server.stop()
