"""tickmesh.metrics: the exposition changes as the integration API is called, labels stay bounded."""

from __future__ import annotations

import socket
import time
import urllib.request

from tickmesh import metrics


def v(name: str, **labels: str) -> float:
    return metrics.value(name, **labels)


def cls(c: str, **more: str) -> dict[str, str]:
    return {"class": c, **more}


def test_render_is_prometheus_text_with_every_family():
    body, content_type = metrics.render(None)
    assert content_type.startswith("text/plain")
    text = body.decode()
    for family in (
        "tickmesh_edge_connections",
        "tickmesh_messages_total",
        "tickmesh_e2e_latency_seconds_bucket",
        "tickmesh_nats_connected",
        "process_cpu_seconds_total",
    ):
        assert family in text
    om_body, om_type = metrics.render("application/openmetrics-text; version=1.0.0")
    assert om_type.startswith("application/openmetrics-text") and om_body.rstrip().endswith(b"# EOF")


def test_a_client_connects_subscribes_is_rate_limited_and_disconnects():
    open0 = v("tickmesh_edge_connections", transport="ws", encoding="json")
    opened0 = v("tickmesh_edge_connections_opened_total", transport="ws", encoding="json")
    closed0 = v("tickmesh_edge_connections_closed_total", transport="ws", code="1000")
    subs0 = v("tickmesh_edge_subscriptions", **cls("state"))
    limited0 = v("tickmesh_edge_rate_limited_total", limit="command")
    errors0 = v("tickmesh_edge_errors_total", code="400")

    conn = metrics.connection_opened("ws", "json")
    assert v("tickmesh_edge_connections", transport="ws", encoding="json") == open0 + 1
    assert v("tickmesh_edge_connections_opened_total", transport="ws", encoding="json") == opened0 + 1
    metrics.subscription_added("state")
    assert v("tickmesh_edge_subscriptions", **cls("state")) == subs0 + 1
    metrics.rate_limited("command")
    metrics.error_sent(400)
    assert v("tickmesh_edge_rate_limited_total", limit="command") == limited0 + 1
    assert v("tickmesh_edge_errors_total", code="400") == errors0 + 1
    metrics.subscription_removed("state")
    conn.closed(1000)
    conn.closed(1000)  # a second call is ignored: the gauge cannot drift
    assert v("tickmesh_edge_connections", transport="ws", encoding="json") == open0
    assert v("tickmesh_edge_connections_closed_total", transport="ws", code="1000") == closed0 + 1
    assert v("tickmesh_edge_subscriptions", **cls("state")) == subs0


def test_throughput_latency_and_queue_depth():
    out0 = v("tickmesh_messages_total", direction="out", **{"class": "state"})
    bytes0 = v("tickmesh_message_bytes_total", direction="out", **{"class": "state"})
    count0 = v("tickmesh_e2e_latency_seconds_count", **cls("state"))
    le100_0 = v("tickmesh_e2e_latency_seconds_bucket", le="0.1", **cls("state"))
    metrics.messages_out("state", 3, 600)
    now = time.time()
    metrics.observe_latency("state", int((now - 0.020) * 1e6), now=now)  # 20 ms: inside the SLO
    metrics.observe_latency("state", int((now - 0.500) * 1e6), now=now)  # 500 ms: outside it
    assert v("tickmesh_messages_total", direction="out", **{"class": "state"}) == out0 + 3
    assert v("tickmesh_message_bytes_total", direction="out", **{"class": "state"}) == bytes0 + 600
    assert v("tickmesh_e2e_latency_seconds_count", **cls("state")) == count0 + 2
    assert v("tickmesh_e2e_latency_seconds_bucket", le="0.1", **cls("state")) == le100_0 + 1
    depth0 = v("tickmesh_edge_queue_depth_frames_count")
    metrics.queue_depth(12, 4096)
    assert v("tickmesh_edge_queue_depth_frames_count") == depth0 + 1


def test_labels_are_clamped_so_cardinality_stays_bounded():
    other0 = v("tickmesh_edge_auth_failures_total", reason="other")
    metrics.auth_failed("user alice sent eyJ.bad.token")
    assert v("tickmesh_edge_auth_failures_total", reason="other") == other0 + 1
    code0 = v("tickmesh_edge_errors_total", code="other")
    metrics.error_sent(9999)
    assert v("tickmesh_edge_errors_total", code="other") == code0 + 1
    cmd0 = v("tickmesh_commands_total", command="other", result="other")
    metrics.command_done("AAPL", "whatever", 0.01)
    assert v("tickmesh_commands_total", command="other", result="other") == cmd0 + 1
    for symbol in ("AAPL", "MSFT", "EUR/USD"):
        metrics.messages_in(symbol)
    text = metrics.render(None)[0].decode()
    assert "AAPL" not in text and "alice" not in text and "EUR/USD" not in text


def test_command_results_and_latency():
    ok0 = v("tickmesh_commands_total", command="order.submit", result="ok")
    metrics.command_done("order.submit", "ok", 0.004)
    metrics.command_done("order.submit", "insufficient_funds", 0.003)
    assert v("tickmesh_commands_total", command="order.submit", result="ok") == ok0 + 1
    assert v("tickmesh_commands_total", command="order.submit", result="insufficient_funds") >= 1
    assert v("tickmesh_command_duration_seconds_count", command="order.submit") >= 2


def test_nats_status_counts_disconnects_and_reconnects():
    metrics.nats_status(True)
    rec0, disc0 = v("tickmesh_nats_reconnects_total"), v("tickmesh_nats_disconnects_total")
    assert v("tickmesh_nats_connected") == 1
    metrics.nats_status(False)
    metrics.nats_status(False)  # repeated reports of the same state count once
    assert v("tickmesh_nats_connected") == 0
    metrics.nats_status(True)
    assert v("tickmesh_nats_connected") == 1
    assert v("tickmesh_nats_disconnects_total") == disc0 + 1
    assert v("tickmesh_nats_reconnects_total") == rec0 + 1


def test_provider_health_age_is_computed_at_scrape_time():
    metrics.provider_status("synthetic", True)
    metrics.provider_message("synthetic", now=time.time() - 42)
    assert v("tickmesh_provider_connected", provider="synthetic") == 1
    assert 41 <= v("tickmesh_provider_last_message_age_seconds", provider="synthetic") < 60
    gaps0 = v("tickmesh_provider_gaps_total", provider="synthetic")
    metrics.provider_gap("synthetic", 3)
    assert v("tickmesh_provider_gaps_total", provider="synthetic") == gaps0 + 3
    metrics.provider_message("synthetic")
    assert v("tickmesh_provider_last_message_age_seconds", provider="synthetic") < 5


def test_recovery_slow_consumers_conflation_and_drops():
    before = {n: v(n) for n in ("tickmesh_edge_conflated_total", "tickmesh_edge_recovery_replayed_messages_total")}
    metrics.conflated(5)
    metrics.recovery("replayed", replayed=17)
    metrics.slow_consumer("event")
    metrics.dropped("bad_payload")
    assert v("tickmesh_edge_conflated_total") == before["tickmesh_edge_conflated_total"] + 5
    assert (
        v("tickmesh_edge_recovery_replayed_messages_total")
        == before["tickmesh_edge_recovery_replayed_messages_total"] + 17
    )
    assert v("tickmesh_edge_slow_consumers_total", **cls("event")) >= 1
    assert v("tickmesh_dropped_messages_total", reason="bad_payload") >= 1


def test_every_exported_tickmesh_metric_is_prefixed_and_documented():
    names = {n for n in metrics.exported_names() if not n.startswith(("process_", "python_"))}
    assert names and all(n.startswith("tickmesh_") for n in names)
    for family in metrics.REGISTRY.collect():
        if family.name.startswith("tickmesh_"):
            assert family.documentation, family.name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_services_serve_metrics_on_metrics_port():
    assert metrics.serve(metrics.MetricsSettings(port=0)) is None
    port = _free_port()
    server = metrics.serve(metrics.MetricsSettings(port=port, host="127.0.0.1"))
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            assert resp.status == 200
            assert b"tickmesh_nats_connected" in resp.read()
    finally:
        server.shutdown()
        server.server_close()
