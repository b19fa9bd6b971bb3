"""The Helm chart: values map one to one onto real settings, and the chart renders correctly.

The helm binary is not packaged in Debian 12, so rendering uses tests/observability/helmrender
(Go's text/template with sprig and Helm's own functions: the engine helm uses), built with the
Debian packages golang-go, golang-github-masterminds-sprig-dev and golang-gopkg-yaml.v3-dev; those
tests are skipped when the packages are absent. The checks above them need only PyYAML.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tickmesh import metrics, streams, tracing
from tickmesh.cli import _settings_classes
from tickmesh.config import describe

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "tickmesh"
RENDERER = Path(__file__).resolve().parent / "helmrender"
GOPATH = "/usr/share/gocode"
SERVICES = ("market-feed", "portfolio-valuer", "broker", "notifier", "announcer", "flags")
# Variables every container may carry besides its component's own settings.
SHARED = ({env for env, _, _ in describe(metrics.MetricsSettings)} | {env for env, _, _ in describe(tracing.TracingSettings)}
          | {env for env, _, _ in describe(streams.Retention)}
          | {"TICKMESH_LOG_FORMAT", "TICKMESH_LOG_LEVEL", "OTEL_RESOURCE_ATTRIBUTES", "POD_NAME", "POD_NAMESPACE"})


def settings_of(component: str) -> set[str]:
    return {env for env, _, _ in describe(_settings_classes()[component])}


def values() -> dict:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def settings_map() -> dict:
    return yaml.safe_load((CHART / "settings-map.yaml").read_text())


def component_values(name: str) -> dict:
    v = values()
    return v["edge"] if name == "edge" else v["services"][name]


def test_every_mapped_variable_is_a_real_setting_of_its_component():
    mapping = settings_map()
    assert set(mapping) == {"edge", *SERVICES, "shared"}
    for component, keys in mapping.items():
        real = SHARED if component == "shared" else settings_of(component)
        for key, env in (keys or {}).items():
            assert env in real, f"settings-map.yaml: {component}.{key} -> {env} is no setting of {component}"
    envs = [env for keys in mapping.values() for env in (keys or {}).values()]
    for component in ("edge", *SERVICES):
        own = list((mapping[component] or {}).values())
        assert len(own) == len(set(own)), f"{component}: two keys map to one variable"
    assert envs


# Settings the chart sets itself or takes from a Secret, so they have no first-class key.
CHART_CONTROLLED = {"NATS_URL", "EDGE_HOST", "TICKMESH_JWT_SECRET", "EDGE_TICKET_SECRET"}


def test_every_setting_of_every_component_has_a_first_class_key_or_is_set_by_the_chart():
    mapping = settings_map()
    for component in ("edge", *SERVICES):
        missing = settings_of(component) - set((mapping[component] or {}).values()) - CHART_CONTROLLED
        assert not missing, f"settings-map.yaml: {component} lacks {sorted(missing)}"
    secrets = {"TICKMESH_JWT_SECRET", "EDGE_TICKET_SECRET"}
    assert not secrets & {env for keys in mapping.values() for env in (keys or {}).values()}, \
        "a secret must come from a Secret, never from a plain value"


def test_values_use_only_mapped_keys_and_real_environment_variables():
    mapping = settings_map()
    v = values()
    assert set(v["services"]) == set(SERVICES)
    for component in ("edge", *SERVICES):
        cv = component_values(component)
        unknown = set(cv.get("settings") or {}) - set(mapping[component] or {})
        assert not unknown, f"{component}.settings has keys that map to no setting: {unknown}"
        bad_env = set(cv.get("env") or {}) - settings_of(component) - SHARED
        assert not bad_env, f"{component}.env names no setting: {bad_env}"
    assert not set(v.get("env") or {}) - SHARED - set().union(*(settings_of(c) for c in ("edge", *SERVICES)))


def test_every_component_tickmesh_knows_has_a_deployment_in_the_chart():
    classes = _settings_classes()
    # "metrics", "tracing" and "streams" are settings every container shares, not components.
    assert {env for name in ("metrics", "tracing", "streams") for env, _, _ in describe(classes[name])} <= SHARED
    components = set(classes) - {"metrics", "tracing", "streams"}
    assert components <= {"edge", *SERVICES}, f"new component(s) without a chart entry: {components - {'edge', *SERVICES}}"


def _template_texts() -> dict[str, str]:
    return {p.name: p.read_text() for p in (CHART / "templates").iterdir()}


def _has_path(tree: dict, dotted: str) -> bool:
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_templates_reference_only_values_that_exist():
    v = values()
    for name, text in _template_texts().items():
        for path in re.findall(r"\.Values((?:\.[A-Za-z0-9_]+)+)", text):
            assert _has_path(v, path.lstrip(".")), f"{name}: .Values{path} is not in values.yaml"


def test_template_blocks_balance_and_includes_exist():
    texts = _template_texts()
    defined = set(re.findall(r'{{-?\s*define\s+"([^"]+)"', "".join(texts.values())))
    for name, text in texts.items():
        actions = re.findall(r"{{-?\s*(/\*.*?\*/|[a-z]+)", text, flags=re.S)
        opened = sum(1 for a in actions if a in ("if", "range", "with", "define"))
        closed = sum(1 for a in actions if a == "end")
        assert opened == closed, f"{name}: {opened} blocks opened, {closed} closed"
        for used in re.findall(r'include\s+"([^"]+)"', text):
            assert used in defined, f"{name}: include of undefined template {used!r}"


# --- rendering ------------------------------------------------------------------------------------
def _renderer_available() -> bool:
    return shutil.which("go") is not None and Path(GOPATH, "src/github.com/Masterminds/sprig").is_dir()


needs_renderer = pytest.mark.skipif(
    not _renderer_available(),
    reason="apt-get install -y golang-go golang-github-masterminds-sprig-dev golang-gopkg-yaml.v3-dev")


@pytest.fixture(scope="module")
def render(tmp_path_factory):
    work = tmp_path_factory.mktemp("helmrender")
    binary = work / "helmrender"
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": GOPATH, "GOCACHE": str(work / "cache"), "GOFLAGS": ""}
    subprocess.run(["go", "build", "-o", str(binary), "."], cwd=RENDERER, env=env, check=True, timeout=600,
                   capture_output=True)

    def run(overrides: dict | None = None, *, expect_error: bool = False):
        args = [str(binary), str(CHART)]
        if overrides:
            extra = work / f"values-{len(list(work.glob('values-*')))}.yaml"
            extra.write_text(yaml.safe_dump(overrides))
            args += ["-f", str(extra)]
        result = subprocess.run(args, capture_output=True, text=True, timeout=60)
        if expect_error:
            assert result.returncode != 0, "rendering should have failed"
            return result.stderr
        assert result.returncode == 0, result.stderr
        docs = [d for d in yaml.safe_load_all(result.stdout) if d]
        for d in docs:
            assert {"apiVersion", "kind", "metadata"} <= set(d), d
            assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", d["metadata"]["name"]), d["metadata"]["name"]
        return {(d["kind"], d["metadata"]["name"]): d for d in docs}

    return run


def _container(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"]["containers"][0]


def _env(doc: dict) -> dict[str, str]:
    entries = _container(doc)["env"]
    names = [e["name"] for e in entries]
    assert len(names) == len(set(names)), f"duplicate env: {names}"
    return {e["name"]: e.get("value") for e in entries}


@needs_renderer
def test_default_render_has_every_component_and_maps_values_to_settings(render):
    out = render()
    edge = out[("Deployment", "tm-tickmesh-edge")]
    env = _env(edge)
    assert env["EDGE_HOST"] == "0.0.0.0" and env["EDGE_PORT"] == "8000"
    assert env["EDGE_OUTBOX_MAX_BYTES"] == "4194304", "whole numbers without an exponent"
    assert env["TICKMESH_TRACE_SAMPLE_RATIO"] == "0.01"
    assert env["EDGE_JWT_ALGORITHMS"] == "HS256"
    assert "EDGE_ALLOWED_ORIGINS" not in env, "[] keeps the code's default"
    assert env["NATS_URL"] == "nats://tm-tickmesh-nats:4222"
    for name, doc in out.items():
        if name[0] != "Deployment":
            continue
        component = doc["metadata"]["labels"]["app.kubernetes.io/component"]
        unknown = set(_env(doc)) - settings_of(component) - SHARED
        assert not unknown, f"{component}: {unknown} are not settings of {component}"
    for service in SERVICES:
        doc = out[("Deployment", f"tm-tickmesh-{service}")]
        assert _container(doc)["args"] == ["service", service]
        annotations = doc["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == "9464"
        assert _env(doc)["METRICS_PORT"] == "9464"
    assert out[("Deployment", "tm-tickmesh-market-feed")]["spec"]["strategy"]["type"] == "Recreate"
    assert ("StatefulSet", "tm-tickmesh-nats") in out and ("Service", "tm-tickmesh-nats") in out
    assert ("PodDisruptionBudget", "tm-tickmesh-edge") in out
    assert ("HorizontalPodAutoscaler", "tm-tickmesh-edge") not in out


@needs_renderer
def test_edge_probes_and_shutdown_follow_the_drain_deadline(render):
    edge = render()[("Deployment", "tm-tickmesh-edge")]
    c = _container(edge)
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
    assert edge["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 5 + 10 + 5 + 5
    longer = render({"edge": {"settings": {"drainDeadlineSeconds": 42.5}, "preStopSeconds": 8}})
    spec = longer[("Deployment", "tm-tickmesh-edge")]["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] == 8 + 43 + 5 + 5
    assert _env(longer[("Deployment", "tm-tickmesh-edge")])["EDGE_DRAIN_DEADLINE_S"] == "42.5"


@needs_renderer
def test_external_nats_hpa_secrets_and_env_overrides(render):
    out = render({
        "nats": {"embedded": False, "url": "nats://a:4222,nats://b:4222"},
        "edge": {"hpa": {"enabled": True}, "env": {"EDGE_POLL_WAIT_S": 20},
                 "settings": {"allowedOrigins": ["https://app.example", "https://m.example"]}},
        "secrets": {"jwtExistingSecret": "jwt"},
        "tracing": {"otlpEndpoint": "http://otel-collector:4318"},
        "metrics": {"podMonitor": {"enabled": True}},
        "services": {"broker": {"enabled": False}},
    })
    assert not any(kind == "StatefulSet" for kind, _ in out)
    edge = out[("Deployment", "tm-tickmesh-edge")]
    env = _env(edge)
    assert env["NATS_URL"] == "nats://a:4222,nats://b:4222"
    assert env["EDGE_POLL_WAIT_S"] == "20"
    assert env["EDGE_ALLOWED_ORIGINS"] == "https://app.example,https://m.example"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    secret = next(e for e in _container(edge)["env"] if e["name"] == "TICKMESH_JWT_SECRET")
    assert secret["valueFrom"]["secretKeyRef"] == {"name": "jwt", "key": "jwt-secret"}
    assert "replicas" not in edge["spec"], "the HPA owns the replica count"
    assert ("HorizontalPodAutoscaler", "tm-tickmesh-edge") in out
    assert ("PodMonitor", "tm-tickmesh") in out
    assert ("Deployment", "tm-tickmesh-broker") not in out


@needs_renderer
def test_mistakes_fail_the_render(render):
    assert "not a first-class setting" in render({"edge": {"settings": {"maxSubscriptons": 3}}}, expect_error=True)
    assert "nats.url is required" in render({"nats": {"embedded": False}}, expect_error=True)


@needs_renderer
def test_market_feed_settings_render_and_dev_mode_stays_off(render):
    out = render()
    assert _env(out[("Deployment", "tm-tickmesh-edge")])["EDGE_DEV_MODE"] == "false"
    feed = _env(out[("Deployment", "tm-tickmesh-market-feed")])
    assert "FEED_REPLAY_FILE" not in feed and "FEED_COINBASE_URL" not in feed, "null keeps the code's default"
    out = render({"services": {"market-feed": {"settings": {
        "provider": "binance", "symbols": ["BTC-USDT", "ETH-USDT"], "replayFile": "/data/ticks.csv",
        "replaySpeed": 10, "replayLoop": False, "coinbaseUrl": "wss://cb.example", "coinbaseHeartbeatTimeoutSeconds": 5,
        "binanceUrl": "wss://stream.binance.us:9443", "binanceIdleTimeoutSeconds": 90, "reconnectMaxSeconds": 60,
        "staleAfterSeconds": 12.5, "maxHzPerSymbol": 20}}},
        "edge": {"settings": {"pollWaitSeconds": 20, "ticketTtlSeconds": 30, "jwksRefetchCooldownSeconds": 15}}})
    feed = _env(out[("Deployment", "tm-tickmesh-market-feed")])
    assert {k: feed[k] for k in feed if k.startswith("FEED_")} == {
        "FEED_PROVIDER": "binance", "FEED_SYMBOLS": "BTC-USDT,ETH-USDT", "FEED_RATE": "100",
        "FEED_REPLAY_FILE": "/data/ticks.csv", "FEED_REPLAY_SPEED": "10", "FEED_REPLAY_LOOP": "false",
        "FEED_COINBASE_URL": "wss://cb.example", "FEED_COINBASE_HEARTBEAT_TIMEOUT_S": "5",
        "FEED_BINANCE_URL": "wss://stream.binance.us:9443", "FEED_BINANCE_IDLE_TIMEOUT_S": "90",
        "FEED_RECONNECT_MAX_S": "60", "FEED_STALE_AFTER_S": "12.5", "FEED_MAX_HZ_PER_SYMBOL": "20"}
    edge = _env(out[("Deployment", "tm-tickmesh-edge")])
    assert (edge["EDGE_POLL_WAIT_S"], edge["EDGE_TICKET_TTL_S"], edge["EDGE_JWKS_REFETCH_COOLDOWN_S"]) == ("20", "30", "15")


@needs_renderer
def test_the_ticket_secret_comes_from_a_secret_and_never_from_env(render):
    out = render({"secrets": {"ticketExistingSecret": "tickets"}})
    edge = out[("Deployment", "tm-tickmesh-edge")]
    ticket = next(e for e in _container(edge)["env"] if e["name"] == "EDGE_TICKET_SECRET")
    assert ticket["valueFrom"]["secretKeyRef"] == {"name": "tickets", "key": "ticket-secret"}
    assert ("Secret", "tm-tickmesh-ticket") not in out
    dev = render({"secrets": {"ticketSecret": "dev-only"}})
    assert ("Secret", "tm-tickmesh-ticket") in dev
    assert "EDGE_TICKET_SECRET" not in _env(render()[("Deployment", "tm-tickmesh-edge")])
    assert "is a secret" in render({"edge": {"env": {"EDGE_TICKET_SECRET": "plain"}}}, expect_error=True)
    assert "is a secret" in render({"env": {"TICKMESH_JWT_SECRET": "plain"}}, expect_error=True)
