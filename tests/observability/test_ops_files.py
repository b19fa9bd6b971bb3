"""The dashboard and the alert rules use only metrics the code exports; the files are valid."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tickmesh import metrics

from .promql import metric_names

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "ops" / "dashboards" / "tickmesh.json"
RULES = ROOT / "ops" / "alerts" / "tickmesh-rules.yml"
COLLECTOR = ROOT / "ops" / "otel" / "collector.yaml"
SLO_ALERTS = {"connection-stability", "latency", "errors"}


def _rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def _recorded() -> set[str]:
    return {rule["record"] for rule in _rules() if "record" in rule}


def _known() -> set[str]:
    return metrics.exported_names() | _recorded()


def _panel_exprs(panels: list[dict]) -> list[tuple[str, str]]:
    out = []
    for panel in panels:
        out += [(panel["title"], target["expr"]) for target in panel.get("targets", []) if target.get("expr")]
        out += _panel_exprs(panel.get("panels", []))
    return out


def test_metric_name_extraction_understands_our_promql():
    expr = (
        'histogram_quantile(0.99, sum by (le, class) (rate(tickmesh_e2e_latency_seconds_bucket{class="state"}[5m])))'
        " / on (pod) group_left tickmesh:x:ratio and 1 - max without (le) (foo_bar offset 5m) > bool 1e-9"
    )
    assert metric_names(expr) == {"tickmesh_e2e_latency_seconds_bucket", "tickmesh:x:ratio", "foo_bar"}


def test_dashboard_queries_reference_only_exported_metrics():
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = _panel_exprs(dashboard["panels"])
    assert len(exprs) >= 20
    known = _known()
    used: set[str] = set()
    for title, expr in exprs:
        names = metric_names(expr)
        assert names, f"{title}: no metric in {expr!r}"
        assert names <= known, f"{title}: unknown metrics {sorted(names - known)} in {expr!r}"
        used |= names
    for topic in (
        "tickmesh_edge_connections",
        "tickmesh_messages_total",
        "tickmesh_e2e_latency_seconds_bucket",
        "tickmesh_edge_errors_total",
        "tickmesh_edge_slow_consumers_total",
        "tickmesh_nats_connected",
        "tickmesh_provider_last_message_age_seconds",
    ):
        assert topic in used, f"the dashboard shows nothing about {topic}"
    assert any("histogram_quantile" in expr for _, expr in exprs)


def test_alert_rules_reference_only_exported_metrics_and_carry_a_runbook():
    known = _known()
    alerts = [rule for rule in _rules() if "alert" in rule]
    for rule in _rules():
        names = metric_names(rule["expr"])
        assert names and names <= known, f"{rule.get('alert') or rule.get('record')}: {sorted(names - known)}"
    for rule in alerts:
        runbook = rule["annotations"].get("runbook", "")
        assert len(runbook) > 20 and "\n" not in runbook.strip(), f"{rule['alert']} needs a one-line runbook"
        assert rule["labels"].get("severity") in {"page", "ticket"}
    assert {rule["labels"].get("slo") for rule in alerts} >= SLO_ALERTS


def test_alert_thresholds_match_the_promised_service_levels():
    text = RULES.read_text()
    assert "tickmesh:e2e_latency:p99_5m > 0.1" in text  # p99 < 100 ms
    assert "(14.4 * 0.001)" in text  # 99.9% stability and 0.1% errors: budget of 0.001
    unstable = "|".join(metrics.UNSTABLE_CLOSE_CODES)
    assert f'code=~"{unstable}"' in text, "the rules and tickmesh.metrics agree on unstable closes"
    assert 0.1 in metrics.LATENCY_BUCKETS, "a bucket boundary at the latency objective"


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool absent: apt-get install -y --no-install-recommends prometheus"
)
def test_promtool_accepts_the_rules():
    result = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_collector_config_receives_otlp_and_exports_traces_and_metrics():
    config = yaml.safe_load(COLLECTOR.read_text())
    assert "otlp" in config["receivers"]
    pipelines = config["service"]["pipelines"]
    for kind in ("traces", "metrics"):
        pipe = pipelines[kind]
        assert "otlp" in pipe["receivers"]
        assert pipe["exporters"] and all(e in config["exporters"] for e in pipe["exporters"])
        assert all(p in config["processors"] for p in pipe["processors"])
