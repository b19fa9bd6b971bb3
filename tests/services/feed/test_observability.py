"""market-feed's metrics and traces over a real nats-server: a sampled tick is one trace from the
feed through the portfolio-valuer to the edge's fan-out, an unsampled one carries no header, and
a feed process serves provider health on ``METRICS_PORT``."""

from __future__ import annotations

import asyncio
import signal
import sys

import orjson
from opentelemetry.trace import SpanKind

from tests.services.conftest import Inbox, account, publish_tick, seed, service
from tests.support.metrics import sample, scrape
from tests.support.procs import Proc, base_env, free_port, wait_http
from tests.support.timing import t
from tickmesh import metrics, tracing
from tickmesh.contracts.channels import Kind, tick_subject, user_subject
from tickmesh.publish import Publisher, now_us
from tickmesh.services.market_feed.pipeline import Pipeline
from tickmesh.services.market_feed.pump import Pump
from tickmesh.services.portfolio_valuer import service as valuer_service

from .fakes import FakeCoinbase
from .util import tick


def _priced(value: str):
    return lambda m: any(p["price"] == value for p in orjson.loads(m.data)["positions"])


def _state_out() -> float:
    return metrics.value("tickmesh_messages_total", direction="out", **{"class": "state"})


async def test_a_sampled_tick_is_one_trace_from_the_feed_through_the_valuer_to_the_edge(nats_server, nc, spans):
    exporter = spans(1.0)  # every tick sampled at the head
    await seed(nc, {"vera": account("1000.00", {"AAPL": ("4", "180.00")})})
    await publish_tick(nc, "AAPL", "190.00")
    portfolio = await Inbox.on(nc, user_subject(Kind.PORTFOLIO, "vera"))
    ticks = await Inbox.on(nc, tick_subject("AAPL"))
    pump = Pump(Pipeline(), Publisher(nc))
    out0, latency0 = _state_out(), metrics.value("tickmesh_publish_latency_seconds_count", **{"class": "state"})
    async with service(valuer_service, nats_server.url, VALUER_MAX_HZ="50"):
        await portfolio.wait_for(_priced("190.00"))
        await pump.emit(tick("AAPL", "191.00", now_us()))
        tick_msg = await ticks.wait_for(lambda m: orjson.loads(m.data)["last"] == "191.00")
        valued = await portfolio.wait_for(_priced("191.00"))
        with tracing.receive("edge.fanout", tick_msg.headers):  # what the edge's Upstream does
            pass
        with tracing.receive("edge.fanout", valued.headers):
            pass
    assert _state_out() >= out0 + 1
    assert metrics.value("tickmesh_publish_latency_seconds_count", **{"class": "state"}) >= latency0 + 1

    _, trace_hex, parent_hex, _ = tick_msg.headers["traceparent"].split("-")
    assert tick_msg.headers["Tm-Seq"], "the seq header is kept next to the trace"
    mine = [s for s in exporter.get_finished_spans() if format(s.context.trace_id, "032x") == trace_hex]
    by_name: dict[str, list] = {}
    for s in mine:
        by_name.setdefault(s.name, []).append(s)
    assert set(by_name) == {
        "feed.tick",
        "feed.normalise",
        "feed.publish",
        "prices.tick",
        "valuer.publish",
        "edge.fanout",
    }
    (root,), (normalise,), (publish,) = by_name["feed.tick"], by_name["feed.normalise"], by_name["feed.publish"]
    assert root.parent is None and root.attributes[tracing.SAMPLED_BY] == "ratio"
    assert root.attributes["tickmesh.provider"] == "test" and root.attributes["tickmesh.published"] == 1
    assert normalise.parent.span_id == root.context.span_id
    assert publish.parent.span_id == root.context.span_id and publish.kind is SpanKind.PRODUCER
    assert publish.attributes["messaging.destination.name"] == tick_subject("AAPL")
    assert format(publish.context.span_id, "016x") == parent_hex, "the header carries the feed.publish span"
    assert by_name["prices.tick"][0].parent.span_id == publish.context.span_id
    fanouts = {f.parent.span_id for f in by_name["edge.fanout"]}
    assert fanouts == {publish.context.span_id, by_name["valuer.publish"][0].context.span_id}


async def test_an_unsampled_tick_carries_no_trace_and_is_still_counted(nc, spans):
    exporter = spans(0.0)  # tracing on, nothing sampled at the head
    ticks = await Inbox.on(nc, tick_subject("MSFT"))
    pump = Pump(Pipeline(), Publisher(nc))
    out0 = _state_out()
    for last in ("415.30", "415.31"):
        await pump.emit(tick("MSFT", last, now_us()))
    await ticks.wait_for(lambda m: orjson.loads(m.data)["last"] == "415.31")
    assert all("traceparent" not in m.headers and "Tm-Seq" in m.headers for m in ticks.msgs)
    assert exporter.get_finished_spans() == ()
    assert _state_out() == out0 + 2


async def test_a_feed_process_serves_provider_health_gaps_reconnects_and_drops(nats_server, tmp_path):
    # The fake drops one ticker frame on the first connection (a sequence gap), then closes it;
    # the second connection replays the same session (duplicates for the pipeline) and stays.
    port = free_port()
    loop = asyncio.get_running_loop()
    async with FakeCoinbase(("close", "silent"), drop=frozenset({4})) as fake:
        env = base_env(
            NATS_URL=nats_server.url,
            METRICS_PORT=str(port),
            METRICS_HOST="127.0.0.1",
            FEED_PROVIDER="coinbase",
            FEED_SYMBOLS="BTC-USD,ETH-USD",
            FEED_COINBASE_URL=fake.url,
            FEED_COINBASE_HEARTBEAT_TIMEOUT_S="600",
            FEED_RECONNECT_MAX_S="1",
        )
        proc = Proc([sys.executable, "-m", "tickmesh", "service", "market-feed"], env, tmp_path / "feed.log")
        url = f"http://127.0.0.1:{port}/metrics"

        def healthy(s: dict) -> bool:
            return (
                sample(s, "tickmesh_provider_connected", 0.0, provider="coinbase") == 1
                and sample(s, "tickmesh_provider_reconnects_total", 0.0, provider="coinbase") >= 1
                and sample(s, "tickmesh_dropped_messages_total", 0.0, reason="stale") >= 1
            )

        try:
            await loop.run_in_executor(None, wait_http, url, 20, proc.proc)
            deadline = loop.time() + t(20)
            samples = await loop.run_in_executor(None, scrape, url)
            while not healthy(samples):
                assert loop.time() < deadline, (samples, proc.output()[-3000:])
                await asyncio.sleep(0.1)
                samples = await loop.run_in_executor(None, scrape, url)
        finally:
            code = await loop.run_in_executor(None, proc.stop, signal.SIGTERM)
    assert code == 0, proc.output()
    assert len(fake.connections) >= 2
    assert sample(samples, "tickmesh_provider_gaps_total", 0.0, provider="coinbase") >= 1
    assert ("tickmesh_provider_last_message_age_seconds", frozenset({("provider", "coinbase")})) in samples
    assert sample(samples, "tickmesh_messages_total", 0.0, direction="out", **{"class": "state"}) >= 6
    assert sample(samples, "tickmesh_publish_latency_seconds_count", 0.0, **{"class": "state"}) >= 6
    assert sample(samples, "tickmesh_build_info", 0.0, component="market-feed", version=_version(samples)) == 1


def _version(samples: dict) -> str:
    return next(dict(labels)["version"] for name, labels in samples if name == "tickmesh_build_info")
