"""The services wired to tickmesh.metrics and tickmesh.tracing: a service process serves /metrics,
an order's trace spans edge → broker → notifier and a sampled tick's reaches the portfolio, over a
real nats-server (the edge's part is played by the test, with the calls the edge makes)."""

from __future__ import annotations

import asyncio
import signal
import sys

import orjson
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.services.conftest import Inbox, account, command, publish_tick, seed, service
from tests.support.metrics import sample, scrape
from tests.support.procs import Proc, base_env, free_port, wait_http
from tests.support.timing import t
from tickmesh import cli, metrics, tracing
from tickmesh.contracts import commands as cmds
from tickmesh.contracts import messages
from tickmesh.contracts.channels import Kind, tick_subject, user_subject
from tickmesh.contracts.codes import ERRORS, ErrorCode
from tickmesh.contracts.messages import SEQ_HEADER
from tickmesh.publish import now_us
from tickmesh.services.broker import service as broker_service
from tickmesh.services.notifier import service as notifier_service
from tickmesh.services.portfolio_valuer import service as valuer_service

FORBIDDEN = next(name for name, info in ERRORS.items() if info.code == 301)


# --- a service process -----------------------------------------------------------------------


async def test_a_service_process_serves_metrics_and_exports_its_command_spans(nats_server, nc, tmp_path):
    port = free_port()
    env = base_env(
        NATS_URL=nats_server.url,
        METRICS_PORT=str(port),
        METRICS_HOST="127.0.0.1",
        OTEL_TRACES_EXPORTER="console",
        OTEL_EXPORTER_OTLP_ENDPOINT="",
        TICKMESH_TRACE_SAMPLE_RATIO="0",
    )
    proc = Proc([sys.executable, "-m", "tickmesh", "service", "announcer"], env, tmp_path / "announcer.log")
    loop = asyncio.get_running_loop()
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        await loop.run_in_executor(None, wait_http, url, 20, proc.proc)
        ok = await command(
            nc, "announcement.publish", "root", {"severity": "info", "text": "Scraped"}, roles=("admin",), timeout=20
        )
        denied = await command(nc, "announcement.publish", "zed", {"severity": "info", "text": "no"}, roles=("user",))
        assert ok.ok and denied.code == 301, (ok, denied, proc.output())
        samples = await loop.run_in_executor(None, scrape, url)
    finally:
        code = await loop.run_in_executor(None, proc.stop, signal.SIGTERM)
    output = proc.output()
    assert code == 0, output

    build = [labels for (name, labels), v in samples.items() if name == "tickmesh_build_info" and v == 1]
    assert [dict(b)["component"] for b in build] == ["announcer"]
    assert sample(samples, "tickmesh_commands_total", command="announcement.publish", result="ok") == 1
    assert sample(samples, "tickmesh_commands_total", command="announcement.publish", result=FORBIDDEN) == 1
    assert sample(samples, "tickmesh_command_duration_seconds_count", command="announcement.publish") == 2
    assert sample(samples, "tickmesh_nats_connected") == 1
    assert sample(samples, "tickmesh_messages_total", direction="out", **{"class": "event"}) == 1

    # Tracing was on (console exporter): both commands were traced although the ratio is 0, the
    # spans were flushed at shutdown, and the log line written inside one names its trace.
    assert output.count('"name": "announcer announcement.publish"') == 2, output
    published = [orjson.loads(line) for line in output.splitlines() if line.startswith('{"ts"')]
    line = next(rec for rec in published if rec.get("event") == "announcer.published")
    assert f'"trace_id": "0x{line["trace_id"]}"' in output


def test_tickmesh_settings_lists_the_shared_metrics_and_tracing_settings(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["settings"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for heading in ("# metrics", "# tracing", "# broker"):
        assert heading in out
    for env in ("METRICS_PORT", "TICKMESH_TRACE_SAMPLE_RATIO", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        assert env in out


# --- traces across the services, in-process -----------------------------------------------------


def _by_name(exporter: InMemorySpanExporter, trace_id: int) -> dict:
    found: dict = {}
    for span in exporter.get_finished_spans():
        if span.context.trace_id == trace_id:
            assert span.name not in found, f"two {span.name} spans in one trace"
            found[span.name] = span
    return found


async def test_an_order_is_one_trace_from_edge_through_broker_and_notifier(nats_server, nc, spans):
    exporter = spans(0.0)  # no head sampling: commands are traced anyway
    await seed(nc, {"olga": account("50000.00")})
    await publish_tick(nc, "AAPL", "187.20")
    notes = await Inbox.on(nc, user_subject(Kind.NOTIFICATIONS, "olga"))
    trades = await Inbox.on(nc, user_subject(Kind.TRADES, "olga"))
    url = nats_server.url
    ok0 = metrics.value("tickmesh_commands_total", command="order.submit", result="ok")
    async with service(broker_service, url), service(notifier_service, url, NOTIFIER_NEWS_PROVIDER="off"):
        await command(nc, "alert.list", "olga", {})  # the notifier serves: its trades consumer exists
        await command(nc, "order.cancel", "olga", {"order_id": "none"})  # so does the broker

        # What the edge does for a cmd frame (tracing.command, headers injected into the request).
        body = cmds.encode_request(
            "order.submit",
            user="olga",
            roles=("user",),
            cmd_id="o-1",
            data={"client_order_id": "trace-1", "symbol": "AAPL", "side": "buy", "type": "market", "quantity": "2"},
        )
        with tracing.command("cmd order.submit", attributes={"tickmesh.cmd_id": "o-1"}) as tr:
            raw = await nc.request(cmds.command_subject("order.submit"), body, headers=tr.inject({}), timeout=t(10))
        reply = cmds.decode_reply(raw.data)
        assert reply.ok and reply.data["status"] == "filled", reply
        trace_id = tr.span.get_span_context().trace_id

        note = await notes.wait_for(lambda m: messages.decode("notification", m.data)["kind"] == "trade")
        with tracing.receive("edge.fanout", note.headers):  # what the edge's Upstream does
            pass
    assert metrics.value("tickmesh_commands_total", command="order.submit", result="ok") == ok0 + 1

    found = _by_name(exporter, trace_id)
    assert set(found) == {"cmd order.submit", "broker order.submit", "notifier.trade", "edge.fanout"}
    edge, broker, notifier, fanout = (
        found[n] for n in ("cmd order.submit", "broker order.submit", "notifier.trade", "edge.fanout")
    )
    assert broker.kind is SpanKind.SERVER and broker.parent.span_id == edge.context.span_id
    assert broker.attributes["tickmesh.cmd_id"] == "o-1"
    assert notifier.parent.span_id == broker.context.span_id, "the execution carried the broker's span"
    assert fanout.parent.span_id == notifier.context.span_id, "the notification carried the notifier's span"
    # The execution itself (what the edge fans out on trades) carries the order's trace too.
    execution = await trades.wait_for(lambda m: messages.decode("execution", m.data)["status"] == "filled")
    assert execution.headers["traceparent"].split("-")[1] == format(trace_id, "032x")

    # Commands without a trace (an edge with tracing off) start one of their own; the untraced
    # tick started none.
    roots = {s.name for s in exporter.get_finished_spans() if s.parent is None}
    assert roots == {"cmd order.submit", "notifier alert.list", "broker order.cancel"}
    cancel = next(s for s in exporter.get_finished_spans() if s.name == "broker order.cancel")
    assert cancel.attributes[tracing.SAMPLED_BY] == "command"
    assert cancel.attributes["tickmesh.error_code"] == ErrorCode.UNKNOWN_ORDER
    assert cancel.status.is_ok, "a refusal is an answer, not a failed span"


async def test_a_sampled_tick_is_traced_into_the_portfolio_and_an_unsampled_one_is_not(nats_server, nc, spans):
    exporter = spans(0.0)
    await seed(nc, {"vera": account("1000.00", {"AAPL": ("4", "180.00")})})
    await publish_tick(nc, "AAPL", "190.00")
    portfolio = await Inbox.on(nc, user_subject(Kind.PORTFOLIO, "vera"))
    in0 = metrics.value("tickmesh_messages_total", direction="in", **{"class": "state"})

    def priced(value: str):
        return lambda m: any(p["price"] == value for p in orjson.loads(m.data)["positions"])

    async with service(valuer_service, nats_server.url, VALUER_MAX_HZ="50"):
        first = await portfolio.wait_for(priced("190.00"))
        assert "traceparent" not in (first.headers or {})

        # What market-feed does for a sampled tick (tracing.begin + inject).
        ts = now_us()
        tick = {"symbol": "AAPL", "last": "191.00", "ts": ts, "ingest_ts": ts, "provider": "test"}
        with tracing.begin("feed.tick", force=True) as tr:
            with tr.step("feed.publish", kind=tracing.PRODUCER):
                await nc.publish(
                    tick_subject("AAPL"), messages.encode("tick", tick), headers=tr.inject({SEQ_HEADER: str(ts)})
                )
        traced_msg = await portfolio.wait_for(priced("191.00"))
        with tracing.receive("edge.fanout", traced_msg.headers):
            pass

        await publish_tick(nc, "AAPL", "192.00")
        plain = await portfolio.wait_for(priced("192.00"))
        assert "traceparent" not in (plain.headers or {}), "an unsampled tick's portfolio carries no trace"
    assert metrics.value("tickmesh_messages_total", direction="in", **{"class": "state"}) == in0 + 2

    found = _by_name(exporter, tr.span.get_span_context().trace_id)
    assert set(found) == {"feed.tick", "feed.publish", "prices.tick", "valuer.publish", "edge.fanout"}
    assert found["prices.tick"].parent.span_id == found["feed.publish"].context.span_id
    assert found["valuer.publish"].parent.span_id == found["prices.tick"].context.span_id
    assert found["edge.fanout"].parent.span_id == found["valuer.publish"].context.span_id
    assert {s.context.trace_id for s in exporter.get_finished_spans()} == {tr.span.get_span_context().trace_id}
