from __future__ import annotations

import nats
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.support.natsserver import NatsServer
from tickmesh import streams, tracing


@pytest.fixture
def nats_server(tmp_path):
    """A real nats-server with JetStream on a free port, stopped after the test."""
    server = NatsServer(tmp_path / "nats").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def nc(nats_server):
    """A NATS client on ``nats_server``, with tickmesh's streams and buckets in place."""
    client = await nats.connect(nats_server.url)
    await streams.ensure(client.jetstream())
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def spans():
    """Tracing on in this process with ``spans(ratio)`` (every in-process service shares it),
    spans kept in memory."""

    def configure(ratio: float) -> InMemorySpanExporter:
        exporter = InMemorySpanExporter()
        assert tracing.setup(
            "test", exporter=exporter, set_global=False, environ={"TICKMESH_TRACE_SAMPLE_RATIO": str(ratio)}
        )
        return exporter

    yield configure
    tracing.shutdown()
