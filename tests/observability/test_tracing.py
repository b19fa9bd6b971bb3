"""tickmesh.tracing over a real nats-server: one trace across hops, nothing when unsampled."""

from __future__ import annotations

import asyncio

import nats
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from tests.support.timing import t
from tickmesh import tracing


async def _next(queue: asyncio.Queue):
    return await asyncio.wait_for(queue.get(), t(5))


async def test_one_trace_from_publisher_through_a_service_to_the_edge(nats_server, spans):
    exp = spans(1.0)
    nc = await nats.connect(nats_server.url)
    try:
        at_edge: asyncio.Queue = asyncio.Queue()

        async def valuer(msg):  # a service hop: continue the trace, publish a derived message
            with tracing.receive("valuer.revalue", msg.headers) as tr:
                await nc.publish("obs.t1.portfolio", b"{}", headers=tr.inject({"Tm-Seq": "1"}))

        async def edge(msg):  # the edge's fan-out: a span child of and linked to the publisher's
            with tracing.receive("edge.fanout", msg.headers, attributes={"messaging.destination.name": msg.subject}):
                pass
            await at_edge.put(msg)

        await nc.subscribe("obs.t1.tick", cb=valuer)
        await nc.subscribe("obs.t1.portfolio", cb=edge)
        await nc.flush()

        with tracing.begin("feed.tick", attributes={"tickmesh.provider": "synthetic"}) as tr:
            assert tr.sampled
            with tr.step("feed.normalise"):
                pass
            with tr.step("feed.publish", kind=tracing.PRODUCER):
                headers = tr.inject({"Tm-Seq": "7"})
                await nc.publish("obs.t1.tick", b"{}", headers=headers)
        received = await _next(at_edge)
        assert "traceparent" in received.headers and received.headers["Tm-Seq"] == "1"
    finally:
        await nc.drain()

    by_name = {s.name: s for s in exp.get_finished_spans()}
    assert set(by_name) == {"feed.tick", "feed.normalise", "feed.publish", "valuer.revalue", "edge.fanout"}
    assert len({s.context.trace_id for s in by_name.values()}) == 1, "one trace end to end"
    root = by_name["feed.tick"]
    assert root.parent is None and root.attributes[tracing.SAMPLED_BY] == "ratio"
    assert by_name["feed.publish"].parent.span_id == root.context.span_id
    assert by_name["valuer.revalue"].parent.span_id == by_name["feed.publish"].context.span_id
    fanout = by_name["edge.fanout"]
    assert fanout.kind is SpanKind.CONSUMER
    assert fanout.parent.span_id == by_name["valuer.revalue"].context.span_id
    assert [link.context.span_id for link in fanout.links] == [by_name["valuer.revalue"].context.span_id]
    assert fanout.resource.attributes["service.name"] == "tickmesh-test"


async def test_ratio_zero_makes_no_spans_and_no_headers(nats_server, spans):
    exp = spans(0.0)
    nc = await nats.connect(nats_server.url)
    try:
        got: asyncio.Queue = asyncio.Queue()

        async def edge(msg):
            with tracing.receive("edge.fanout", msg.headers):
                pass
            await got.put(msg)

        await nc.subscribe("obs.t2.tick", cb=edge)
        await nc.flush()
        for i in range(50):
            assert not tracing.should_sample()
            with tracing.begin("feed.tick") as tr:
                assert tr is tracing.UNSAMPLED
                with tr.step("feed.publish"):
                    await nc.publish("obs.t2.tick", b"{}", headers=tr.inject({"Tm-Seq": str(i)}))
        for _ in range(50):
            msg = await _next(got)
            assert set(msg.headers) == {"Tm-Seq"}
            assert not tracing.carries_trace(msg.headers)
    finally:
        await nc.drain()
    assert exp.get_finished_spans() == ()


async def test_an_order_is_always_traced_from_edge_to_broker_to_notifier(nats_server, spans):
    exp = spans(0.0)  # head sampling off: commands are traced anyway
    nc = await nats.connect(nats_server.url)
    try:
        delivered: asyncio.Queue = asyncio.Queue()

        async def broker(msg):
            with tracing.receive("broker order.submit", msg.headers, kind=tracing.SERVER) as tr:
                await nc.publish("obs.t3.trade", b"{}", headers=tr.inject({}))
                await msg.respond(b'{"ok":true}')

        async def notifier(msg):
            with tracing.receive("notifier.trade", msg.headers) as tr:
                await nc.publish("obs.t3.notification", b"{}", headers=tr.inject({}))

        async def edge_fanout(msg):
            with tracing.receive("edge.fanout", msg.headers):
                pass
            await delivered.put(msg)

        await nc.subscribe("obs.t3.cmd", cb=broker)
        await nc.subscribe("obs.t3.trade", cb=notifier)
        await nc.subscribe("obs.t3.notification", cb=edge_fanout)
        await nc.flush()

        with tracing.command("cmd order.submit", attributes={"tickmesh.cmd_id": "c-1"}) as tr:
            assert tr.sampled
            reply = await nc.request("obs.t3.cmd", b"{}", headers=tr.inject({}), timeout=t(5))
        assert reply.data == b'{"ok":true}'
        await _next(delivered)
    finally:
        await nc.drain()

    spans_ = exp.get_finished_spans()
    names = {s.name for s in spans_}
    assert names == {"cmd order.submit", "broker order.submit", "notifier.trade", "edge.fanout"}
    assert len({s.context.trace_id for s in spans_}) == 1
    root = next(s for s in spans_ if s.name == "cmd order.submit")
    assert root.attributes[tracing.SAMPLED_BY] == "command"


def test_a_failing_step_is_recorded_as_an_error(spans):
    exp = spans(1.0)
    with pytest.raises(ValueError):
        with tracing.begin("feed.tick") as tr:
            with tr.step("feed.normalise"):
                raise ValueError("bad tick")
    by_name = {s.name: s for s in exp.get_finished_spans()}
    assert by_name["feed.normalise"].status.status_code is StatusCode.ERROR
    assert by_name["feed.tick"].status.status_code is StatusCode.ERROR


def test_without_an_endpoint_tracing_is_off_and_costs_nothing():
    assert not tracing.setup("test", environ={}, set_global=False)
    assert not tracing.enabled() and tracing.sample_ratio() == 0.0
    assert tracing.begin("feed.tick") is tracing.UNSAMPLED
    assert tracing.command("cmd order.submit") is tracing.UNSAMPLED
    headers = {"Tm-Seq": "1", "traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}
    assert tracing.receive("edge.fanout", headers) is tracing.UNSAMPLED
    assert tracing.UNSAMPLED.inject({"Tm-Seq": "1"}) == {"Tm-Seq": "1"}


def test_configuration_from_standard_otel_variables():
    try:
        on = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "TICKMESH_TRACE_SAMPLE_RATIO": "0.25"}
        assert tracing.setup("test", environ=on, set_global=False)
        assert tracing.sample_ratio() == 0.25
        assert not tracing.setup("test", environ={**on, "OTEL_SDK_DISABLED": "true"}, set_global=False)
        assert not tracing.setup("test", environ={**on, "OTEL_TRACES_EXPORTER": "none"}, set_global=False)
        fallback = {
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:9/v1/traces",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.5",
        }
        assert tracing.setup("test", environ=fallback, set_global=False)
        assert tracing.sample_ratio() == 0.5
        assert tracing.setup("test", environ={**on, "TICKMESH_TRACE_SAMPLE_RATIO": "0"}, set_global=False)
        assert tracing.sample_ratio() == 0.0 and not tracing.should_sample()
    finally:
        tracing.shutdown()


def test_log_fields_name_the_current_trace(spans):
    spans(1.0)
    assert tracing.log_fields() == {}
    with tracing.begin("feed.tick") as tr:
        fields = tracing.log_fields()
        assert fields["trace_id"] == format(tr.span.get_span_context().trace_id, "032x")
        assert len(fields["span_id"]) == 16
    assert tracing.log_fields() == {}
