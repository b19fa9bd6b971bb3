"""tickmesh.streams.ensure against real nats-server processes: settings, replicas, idempotence."""

from __future__ import annotations

import asyncio
import socket

import nats
import pytest

from tests.support.natsserver import NatsServer
from tests.support.timing import t
from tickmesh import config, streams
from tickmesh.contracts import streams as table


def _settings(**env: str):
    return config.load(streams.Retention, env)


async def test_every_stream_and_bucket_is_created_with_the_configured_limits(nats_server):
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        r = _settings(TM_RETAIN_NEWS_S="60", EDGE_TICKET_RESUME_S="30")
        await streams.ensure(js, r)
        await streams.ensure(js, r)  # idempotent
        for st in table.streams().values():
            info = await js.stream_info(st.name)
            assert info.config.subjects == list(st.subjects) and info.config.num_replicas == 1
        assert (await js.stream_info(streams.NEWS)).config.max_age == 60
        for b in table.buckets().values():
            await js.key_value(b.name)
        assert (await js.stream_info(f"KV_{streams.TICKETS_BUCKET}")).config.max_age == 30

        # A changed setting is applied to the existing stream and bucket on the next start.
        await streams.ensure(js, _settings(TM_RETAIN_NEWS_S="90", EDGE_TICKET_RESUME_S="45"))
        assert (await js.stream_info(streams.NEWS)).config.max_age == 90
        assert (await js.stream_info(f"KV_{streams.TICKETS_BUCKET}")).config.max_age == 45
    finally:
        await nc.close()


def test_replicas_setting_is_bounded():
    assert _settings().replicas == 1
    assert _settings(TICKMESH_STREAM_REPLICAS="3").replicas == 3
    for bad in ("0", "6", "two"):
        with pytest.raises(config.ConfigError, match="TICKMESH_STREAM_REPLICAS"):
            _settings(TICKMESH_STREAM_REPLICAS=bad)


async def test_more_replicas_than_a_single_server_can_hold_is_a_clear_error(nc):
    with pytest.raises(
        streams.StreamSetupError, match=r"cannot change replicas from 1 to 3 \(TICKMESH_STREAM_REPLICAS\)"
    ):
        await streams.ensure(nc.jetstream(), _settings(TICKMESH_STREAM_REPLICAS="3"))
    info = await nc.jetstream().stream_info(streams.TICKS)
    assert info.config.num_replicas == 1  # nothing lost, nothing half-changed


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture
def cluster(tmp_path):
    routes = _free_ports(3)
    urls = ",".join(f"nats://127.0.0.1:{p}" for p in routes)
    servers = [
        NatsServer(
            tmp_path / f"n{i}",
            name=f"n{i}",
            extra=["--cluster_name", "tm", "--cluster", f"nats://127.0.0.1:{routes[i]}", "--routes", urls],
        )
        for i in range(3)
    ]
    try:
        for s in servers:
            s.start()
        yield servers
    finally:
        for s in servers:
            s.stop()


async def test_a_cluster_scales_existing_streams_and_buckets_to_the_new_replica_count(cluster):
    nc = await nats.connect(servers=[s.url for s in cluster])
    try:
        js = nc.jetstream()
        deadline = asyncio.get_running_loop().time() + t(20)
        while True:  # the JetStream meta group needs a leader before streams can be made
            try:
                await streams.ensure(js, _settings())
                break
            except Exception:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.2)
        await js.publish("tm.news", b"{}")
        await streams.ensure(js, _settings(TICKMESH_STREAM_REPLICAS="3"))
        assert (await js.stream_info(streams.NEWS)).config.num_replicas == 3
        assert (await js.stream_info(f"KV_{streams.HOLDINGS_BUCKET}")).config.num_replicas == 3
        assert (await js.stream_info(streams.NEWS)).state.messages == 1
    finally:
        await nc.close()
