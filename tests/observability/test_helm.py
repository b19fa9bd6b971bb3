"""The Helm chart: values map one to one onto real settings, and real Helm renders, lints and
installs (client dry run) it, every manifest valid for the oldest and newest Kubernetes.

Helm is the Helm v4 SDK from the PyPI package helm-python-sdk (no helm binary, no cluster);
manifests are checked against the Kubernetes OpenAPI schemas of kubernetes-validate, strictly (no
field the API does not know).

The chart depends on the official NATS chart (alias ``natscluster``), whose archive cannot be
downloaded here. When ``helm dependency build`` has put it in helm/tickmesh/charts/, the tests
use it. Otherwise they use a copy of the chart with a stand-in for it (see ``_stand_in``), so that
Helm accepts the declared dependency and the chart's own side of cluster mode is tested; and
``Chart.render`` of the chart as committed checks what works without the archive.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from tickmesh import metrics, natsconn, streams, tracing
from tickmesh.cli import _settings_classes
from tickmesh.config import describe

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "tickmesh"
SERVICES = ("market-feed", "portfolio-valuer", "broker", "notifier", "announcer", "flags", "watchlists")
# Variables every container may carry besides its component's own settings.
SHARED = (
    {env for env, _, _ in describe(metrics.MetricsSettings)}
    | {env for env, _, _ in describe(tracing.TracingSettings)}
    | {env for env, _, _ in describe(streams.Retention)}
    | {env for env, _, _ in describe(natsconn.NatsSettings)}
    | {"TICKMESH_LOG_FORMAT", "TICKMESH_LOG_LEVEL", "OTEL_RESOURCE_ATTRIBUTES", "POD_NAME", "POD_NAMESPACE"}
)


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
CHART_CONTROLLED = {
    "NATS_URL",
    "EDGE_HOST",
    "TICKMESH_JWT_SECRET",
    "EDGE_TICKET_SECRET",
    "VALUER_SHARDS",
    "VALUER_SHARD",
    "EDGE_TLS_CERT_FILE",
    "EDGE_TLS_KEY_FILE",
    "EDGE_TLS_CLIENT_CA_FILE",
}


def test_every_setting_of_every_component_has_a_first_class_key_or_is_set_by_the_chart():
    mapping = settings_map()
    for component in ("edge", *SERVICES):
        missing = settings_of(component) - set((mapping[component] or {}).values()) - CHART_CONTROLLED
        assert not missing, f"settings-map.yaml: {component} lacks {sorted(missing)}"
    secrets = {"TICKMESH_JWT_SECRET", "EDGE_TICKET_SECRET"}
    assert not secrets & {env for keys in mapping.values() for env in (keys or {}).values()}, (
        "a secret must come from a Secret, never from a plain value"
    )


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
    # "metrics", "tracing", "streams" and "nats" are settings every container shares, not components.
    shared = ("metrics", "tracing", "streams", "nats")
    assert {env for name in shared for env, _, _ in describe(classes[name])} <= SHARED
    components = set(classes) - set(shared)
    assert components <= {"edge", *SERVICES}, (
        f"new component(s) without a chart entry: {components - {'edge', *SERVICES}}"
    )


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


# --- rendering with real Helm ---------------------------------------------------------------------
# Kubernetes versions the manifests must be valid for: the chart's oldest (kubeVersion in
# Chart.yaml) and the newest kubernetes-validate knows.
KUBE_OLDEST = "1.25.0"
KUBE_NEWEST = kubernetes_validate.utils.latest_version() + ".0"
CRD_GROUPS = ("monitoring.coreos.com/",)  # custom resources: no schema in Kubernetes itself
STAGING = {"natscluster": {"enabled": False}, "nats": {"embedded": True}}


def chart_metadata() -> dict:
    return yaml.safe_load((CHART / "Chart.yaml").read_text())


def _stand_in(charts: Path) -> None:
    """A stand-in for the official NATS chart in ``charts/``: its archive cannot be downloaded
    here (no network), and Helm refuses to lint or install a chart whose declared dependency is
    missing. It has the official chart's name and pinned version and the defaults this chart
    reads from it (its client port); it renders nothing. With the real archive in charts/ the
    tests use that instead."""
    dep = chart_metadata()["dependencies"][0]
    stand_in = charts / dep["name"]
    (stand_in / "templates").mkdir(parents=True)
    (stand_in / "Chart.yaml").write_text(
        yaml.safe_dump(
            {"apiVersion": "v2", "name": dep["name"], "version": dep["version"], "appVersion": dep["version"]}
        )
    )
    (stand_in / "values.yaml").write_text(yaml.safe_dump({"config": {"nats": {"port": 4222}}}))


@pytest.fixture(scope="module")
def chart_dir(tmp_path_factory) -> Path:
    """The chart with its NATS dependency resolvable: as is when `helm dependency build` fetched
    the real one, else a copy with the stand-in."""
    if list((CHART / "charts").glob("nats-*.tgz")):
        return CHART
    copy = tmp_path_factory.mktemp("chart") / "tickmesh"
    shutil.copytree(CHART, copy)
    _stand_in(copy / "charts")
    return copy


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


_VALID: set[str] = set()  # manifests already validated (many renders repeat most of them)


def _validate(docs: list[dict]) -> None:
    for d in docs:
        assert {"apiVersion", "kind", "metadata"} <= set(d), d
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", d["metadata"]["name"]), d["metadata"]["name"]
        key = json.dumps(d, sort_keys=True)
        if d["apiVersion"].startswith(CRD_GROUPS) or key in _VALID:
            continue
        _VALID.add(key)
        for version in (KUBE_OLDEST, KUBE_NEWEST):
            try:
                kubernetes_validate.validate(d, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(
                    f"{d['kind']} {d['metadata']['name']} is invalid for Kubernetes {version}: "
                    f"{'.'.join(map(str, exc.path))}: {exc.message}"
                )


def _manifests(rendered: dict[str, str]) -> list[dict]:
    return [
        d
        for path, text in sorted(rendered.items())
        if not path.endswith("NOTES.txt")
        for d in yaml.safe_load_all(text)
        if d
    ]


@pytest.fixture(scope="module")
def render(chart_dir):
    """``render(overrides)`` renders with Helm's engine (``Chart.render``, release ``tm``), checks
    every manifest against the schemas, and returns them by (kind, name). Values are the chart's
    defaults (the NATS cluster) with ``overrides`` on top; ``staging=True`` lays them over the
    embedded single-node NATS instead. Each render loads the chart afresh: rendering drops the
    subcharts whose condition is false from the loaded chart."""

    def run(overrides: dict | None = None, *, staging: bool = False, expect_error: bool = False):
        values = _deep_merge(STAGING if staging else {}, overrides or {})
        with helm.Chart.load(chart_dir) as chart:
            if expect_error:
                with pytest.raises(helm.HelmRenderError) as err:
                    chart.render(values, name="tm", namespace="default", is_install=True)
                return str(err.value)
            docs = _manifests(chart.render(values, name="tm", namespace="default", is_install=True))
        _validate(docs)
        out = {(d["kind"], d["metadata"]["name"]): d for d in docs}
        assert len(out) == len(docs), "two manifests with one kind and name"
        return out

    return run


def _pod(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"]


def _container(doc: dict) -> dict:
    return _pod(doc)["containers"][0]


def _env(doc: dict) -> dict[str, str]:
    entries = _container(doc)["env"]
    names = [e["name"] for e in entries]
    assert len(names) == len(set(names)), f"duplicate env: {names}"
    return {e["name"]: e.get("value") for e in entries}


def _workloads(out: dict) -> dict:
    return {k: d for k, d in out.items() if k[0] in ("Deployment", "StatefulSet") and "tickmesh" in k[1]}


# --- the NATS dependency -----------------------------------------------------------------------------
def test_the_official_nats_chart_is_a_pinned_aliased_conditional_dependency():
    deps = chart_metadata()["dependencies"]
    assert len(deps) == 1
    dep = deps[0]
    assert dep["name"] == "nats" and dep["repository"] == "https://nats-io.github.io/k8s/helm/charts/"
    assert re.fullmatch(r"\d+\.\d+\.\d+", dep["version"]), "pinned to one version, not a range"
    assert dep["alias"] == dep["alias"].lower() and dep["alias"] != "nats", (
        "aliased, so its values do not collide with this chart's own `nats` block"
    )
    assert dep["condition"] == f"{dep['alias']}.enabled"
    sub = values()[dep["alias"]]
    assert sub["enabled"] is True, "the cluster is the default"
    assert sub["config"]["cluster"] == {"enabled": True, "replicas": 3}
    assert sub["config"]["jetstream"]["enabled"] and sub["config"]["jetstream"]["fileStore"]["enabled"]
    assert sub["natsBox"]["enabled"] is False


def test_the_committed_chart_renders_without_the_archive_only_with_the_cluster_off():
    """helm template refuses a declared dependency missing from charts/ even when its condition
    is false; Helm's engine (Chart.render) renders, and the chart itself says what is missing
    when the cluster is asked for."""
    with helm.Chart.load(CHART) as chart:
        if list((CHART / "charts").glob("nats-*.tgz")):
            pytest.skip("the NATS chart archive is present")
        docs = _manifests(chart.render(STAGING, name="tm"))
        _validate(docs)
        assert any(d["kind"] == "StatefulSet" and d["metadata"]["name"] == "tm-tickmesh-nats" for d in docs)
        with pytest.raises(helm.HelmRenderError, match="helm dependency build"):
            chart.render({}, name="tm")


def test_helm_lint_is_clean_for_the_oldest_and_newest_kubernetes(chart_dir):
    for overrides in ({}, STAGING, {"natscluster": {"enabled": False}, "nats": {"url": "nats://a:4222"}}):
        for version in (KUBE_OLDEST, KUBE_NEWEST):
            report = helm.lint(chart_dir, overrides, strict=True, kube_version=f"v{version}")
            problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
            assert not problems, f"helm lint {overrides} (Kubernetes {version}): {problems}"


def test_a_client_dry_run_install_gives_the_same_manifests_as_the_engine(chart_dir, render):
    """`helm install --dry-run=client` (what `helm template` runs): hooks, ordering and NOTES the
    way helm applies them."""
    with helm.Config(storage_driver="memory", namespace="default") as config:
        release = config.install(
            str(chart_dir), "tm", {"secrets": {"jwtSecret": "dev-only"}}, dry_run="client", namespace="default"
        )
    docs = [d for d in yaml.safe_load_all(release["manifest"]) if d]
    _validate(docs)
    assert {(d["kind"], d["metadata"]["name"]) for d in docs} == set(render({"secrets": {"jwtSecret": "dev-only"}}))
    assert "nats://tm-natscluster:4222" in release["notes"] and "3 replicas" in release["notes"]


def test_cluster_mode_points_at_the_subchart_and_replicates_streams(render):
    out = render()
    assert ("StatefulSet", "tm-tickmesh-nats") not in out, "the embedded single node is for staging only"
    for (_kind, name), doc in _workloads(out).items():
        env = _env(doc)
        assert env["NATS_URL"] == "nats://tm-natscluster:4222", name
        assert env["TICKMESH_STREAM_REPLICAS"] == "3", name
    staging = render(staging=True)
    assert _env(staging[("Deployment", "tm-tickmesh-edge")])["TICKMESH_STREAM_REPLICAS"] == "1"
    external = render({"natscluster": {"enabled": False}, "nats": {"url": "nats://a:4222", "streamReplicas": 3}})
    assert _env(external[("Deployment", "tm-tickmesh-broker")])["TICKMESH_STREAM_REPLICAS"] == "3"
    five = render({"natscluster": {"config": {"cluster": {"replicas": 7}}}})
    assert _env(five[("Deployment", "tm-tickmesh-edge")])["TICKMESH_STREAM_REPLICAS"] == "5", "JetStream's maximum"


def test_one_nats_only_and_the_cluster_needs_jetstream(render):
    assert "choose one NATS" in render({"nats": {"embedded": True}}, expect_error=True)
    assert "choose one NATS" in render({"nats": {"url": "nats://a:4222"}}, expect_error=True)
    assert "set natscluster.enabled, nats.embedded or nats.url" in render(
        {"natscluster": {"enabled": False}}, expect_error=True
    )
    assert "config.jetstream.enabled" in render(
        {"natscluster": {"config": {"jetstream": {"enabled": False}}}}, expect_error=True
    )


# --- what the chart renders --------------------------------------------------------------------------
def test_default_render_has_every_component_and_maps_values_to_settings(render):
    out = render()
    edge = out[("Deployment", "tm-tickmesh-edge")]
    env = _env(edge)
    assert env["EDGE_HOST"] == "0.0.0.0" and env["EDGE_PORT"] == "8000"
    assert env["EDGE_OUTBOX_MAX_BYTES"] == "4194304", "whole numbers without an exponent"
    assert env["TICKMESH_TRACE_SAMPLE_RATIO"] == "0.01"
    assert env["EDGE_JWT_ALGORITHMS"] == "HS256"
    assert "EDGE_ALLOWED_ORIGINS" not in env, "[] keeps the code's default"
    for name, doc in _workloads(out).items():
        service = _container(doc)["args"][-1]
        unknown = set(_env(doc)) - settings_of(service) - SHARED
        assert not unknown, f"{name}: {unknown} are not settings of {service}"
    for service in SERVICES:
        kind = "StatefulSet" if service == "portfolio-valuer" else "Deployment"
        doc = out[(kind, f"tm-tickmesh-{service}")]
        assert _container(doc)["args"] == ["service", service]
        annotations = doc["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == "9464"
        assert _env(doc)["METRICS_PORT"] == "9464"
        assert _container(doc)["image"] == "tickmesh:0.1.0"
    assert ("PodDisruptionBudget", "tm-tickmesh-edge") in out
    assert ("HorizontalPodAutoscaler", "tm-tickmesh-edge") in out
    assert "replicas" not in edge["spec"], "the HPA owns the edge's replica count"


def test_the_image_is_the_one_the_containerfile_builds(render):
    containerfile = (ROOT / "Containerfile").read_text()
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert chart_metadata()["appVersion"] == version, "the image is tagged with the package version"
    assert values()["image"]["repository"] == "tickmesh" and not values()["image"]["tag"]
    assert 'org.opencontainers.image.version="${VERSION}"' in containerfile
    assert re.search(rf"^ARG VERSION={re.escape(version)}$", containerfile, re.M)
    assert _container(render()[("Deployment", "tm-tickmesh-edge")])["image"] == f"tickmesh:{version}"


def test_edge_probes_and_shutdown_follow_the_drain_deadline(render):
    edge = render()[("Deployment", "tm-tickmesh-edge")]
    c = _container(edge)
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz", "readiness fails while draining"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["lifecycle"]["preStop"]["exec"]["command"] == ["sh", "-c", "sleep 5; kill -TERM 1; sleep 15"], (
        "preStop waits for endpoints to forget the pod, then starts the drain"
    )
    grace = _pod(edge)["terminationGracePeriodSeconds"]
    assert grace == 5 + 10 + 5 + 5 and grace > 10, "longer than the drain deadline"
    longer = render({"edge": {"settings": {"drainDeadlineSeconds": 42.5}, "preStopSeconds": 8}})
    edge = longer[("Deployment", "tm-tickmesh-edge")]
    assert _pod(edge)["terminationGracePeriodSeconds"] == 8 + 43 + 5 + 5
    assert _container(edge)["lifecycle"]["preStop"]["exec"]["command"][-1] == "sleep 8; kill -TERM 1; sleep 48"
    assert _env(edge)["EDGE_DRAIN_DEADLINE_S"] == "42.5"
    assert "must exceed" in render({"edge": {"terminationGracePeriodSeconds": 12}}, expect_error=True)


def test_edge_tls_comes_from_a_mounted_secret(render):
    plain = render()[("Deployment", "tm-tickmesh-edge")]
    assert not {"EDGE_TLS_CERT_FILE", "EDGE_TLS_KEY_FILE"} & set(_env(plain)), "plain HTTP by default"
    edge = render({"edge": {"tls": {"secretName": "edge-cert"}}})[("Deployment", "tm-tickmesh-edge")]
    env, c = _env(edge), _container(edge)
    assert (
        env["EDGE_TLS_CERT_FILE"] == "/etc/tickmesh/tls/tls.crt"
        and env["EDGE_TLS_KEY_FILE"] == "/etc/tickmesh/tls/tls.key"
    )
    assert "EDGE_TLS_CLIENT_CA_FILE" not in env
    assert {"name": "tls", "mountPath": "/etc/tickmesh/tls", "readOnly": True} in c["volumeMounts"]
    assert {"name": "tls", "secret": {"secretName": "edge-cert", "defaultMode": 0o440}} in _pod(edge)["volumes"]
    assert c["readinessProbe"]["httpGet"]["scheme"] == "HTTPS" and c["livenessProbe"]["httpGet"]["scheme"] == "HTTPS"
    mutual = render({"edge": {"tls": {"secretName": "edge-cert", "clientCaKey": "ca.crt"}}})[
        ("Deployment", "tm-tickmesh-edge")
    ]
    assert _env(mutual)["EDGE_TLS_CLIENT_CA_FILE"] == "/etc/tickmesh/tls/ca.crt"
    assert "tcpSocket" in _container(mutual)["readinessProbe"], "the kubelet has no client certificate"


def test_edges_scale_without_affinity_and_spread_over_nodes_and_zones(render):
    out = render({"edge": {"hpa": {"connectionsPerPod": 5000}}})
    service = out[("Service", "tm-tickmesh-edge")]
    assert service["spec"]["sessionAffinity"] == "None"
    hpa = out[("HorizontalPodAutoscaler", "tm-tickmesh-edge")]["spec"]
    assert hpa["scaleTargetRef"]["name"] == "tm-tickmesh-edge"
    metrics_ = {m["type"]: m for m in hpa["metrics"]}
    assert metrics_["Resource"]["resource"]["name"] == "cpu"
    assert metrics_["Pods"]["pods"]["metric"]["name"] == "tickmesh_edge_connections"
    assert metrics_["Pods"]["pods"]["target"] == {"type": "AverageValue", "averageValue": "5000"}
    assert hpa["behavior"]["scaleDown"]["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 120}]
    assert "Pods" not in {
        m["type"] for m in render()[("HorizontalPodAutoscaler", "tm-tickmesh-edge")]["spec"]["metrics"]
    }
    spread = _pod(out[("Deployment", "tm-tickmesh-edge")])["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    assert out[("PodDisruptionBudget", "tm-tickmesh-edge")]["spec"]["maxUnavailable"] == 1
    fixed = render({"edge": {"hpa": {"enabled": False}, "replicas": 3}})
    assert fixed[("Deployment", "tm-tickmesh-edge")]["spec"]["replicas"] == 3
    assert ("HorizontalPodAutoscaler", "tm-tickmesh-edge") not in fixed


def test_services_get_the_replica_semantics_they_can_honour(render):
    out = render()
    feed = out[("Deployment", "tm-tickmesh-market-feed")]["spec"]
    assert (feed["replicas"], feed["strategy"]["type"]) == (1, "Recreate"), "one active publisher"
    broker = out[("Deployment", "tm-tickmesh-broker")]["spec"]
    assert broker["replicas"] == 2 and ("PodDisruptionBudget", "tm-tickmesh-broker") in out
    notifier = out[("Deployment", "tm-tickmesh-notifier")]["spec"]
    assert (notifier["replicas"], notifier["strategy"]["type"]) == (1, "Recreate"), "one news source at a time"
    assert out[("Deployment", "tm-tickmesh-announcer")]["spec"]["replicas"] == 2

    valuer = out[("StatefulSet", "tm-tickmesh-portfolio-valuer")]
    assert valuer["spec"]["replicas"] == 2 and valuer["spec"]["podManagementPolicy"] == "Parallel"
    assert valuer["spec"]["serviceName"] == "tm-tickmesh-portfolio-valuer"
    assert out[("Service", "tm-tickmesh-portfolio-valuer")]["spec"]["clusterIP"] == "None"
    env = _env(valuer)
    assert (env["VALUER_SHARDS"], env["VALUER_SHARD"]) == ("2", "ordinal")
    four = render({"services": {"portfolio-valuer": {"replicas": 4}}})
    assert _env(four[("StatefulSet", "tm-tickmesh-portfolio-valuer")])["VALUER_SHARDS"] == "4"

    assert "one active publisher" in render({"services": {"market-feed": {"replicas": 2}}}, expect_error=True)
    assert "newsProvider=off" in render({"services": {"notifier": {"replicas": 2}}}, expect_error=True)
    scaled = render({"services": {"notifier": {"replicas": 3, "settings": {"newsProvider": "off"}}}})
    notifier = scaled[("Deployment", "tm-tickmesh-notifier")]
    assert (notifier["spec"]["replicas"], notifier["spec"]["strategy"]["type"]) == (3, "RollingUpdate")
    assert _env(notifier)["NOTIFIER_NEWS_PROVIDER"] == "off"


def test_more_market_feed_providers_each_get_one_active_publisher(render):
    out = render(
        {
            "services": {
                "market-feed": {
                    "settings": {"provider": "coinbase", "symbols": ["BTC-USD"]},
                    "instances": {
                        "binance": {
                            "settings": {"provider": "binance", "symbols": ["BTC-USDT"]},
                            "env": {"FEED_BINANCE_IDLE_TIMEOUT_S": 90},
                        }
                    },
                }
            }
        }
    )
    main = out[("Deployment", "tm-tickmesh-market-feed")]
    extra = out[("Deployment", "tm-tickmesh-market-feed-binance")]
    assert _env(main)["FEED_PROVIDER"] == "coinbase" and _env(main)["FEED_SYMBOLS"] == "BTC-USD"
    env = _env(extra)
    assert (env["FEED_PROVIDER"], env["FEED_SYMBOLS"], env["FEED_BINANCE_IDLE_TIMEOUT_S"]) == (
        "binance",
        "BTC-USDT",
        "90",
    )
    assert env["FEED_RATE"] == "100", "the instance keeps the settings it does not override"
    assert env["OTEL_SERVICE_NAME"] == "tickmesh-market-feed-binance"
    assert _container(extra)["args"] == ["service", "market-feed"]
    assert (extra["spec"]["replicas"], extra["spec"]["strategy"]["type"]) == (1, "Recreate")
    selectors = {d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] for d in (main, extra)}
    assert len(selectors) == 2, "each Deployment selects only its own pods"


def test_external_nats_hpa_secrets_and_env_overrides(render):
    out = render(
        {
            "natscluster": {"enabled": False},
            "nats": {"url": "nats://a:4222,nats://b:4222"},
            "edge": {
                "env": {"EDGE_POLL_WAIT_S": 20},
                "settings": {"allowedOrigins": ["https://app.example", "https://m.example"]},
            },
            "secrets": {"jwtExistingSecret": "jwt"},
            "tracing": {"otlpEndpoint": "http://otel-collector:4318"},
            "metrics": {"podMonitor": {"enabled": True}},
            "services": {"broker": {"enabled": False}},
        }
    )
    assert not any(name.endswith("-nats") for _, name in out)
    edge = out[("Deployment", "tm-tickmesh-edge")]
    env = _env(edge)
    assert env["NATS_URL"] == "nats://a:4222,nats://b:4222"
    assert env["EDGE_POLL_WAIT_S"] == "20"
    assert env["EDGE_ALLOWED_ORIGINS"] == "https://app.example,https://m.example"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    secret = next(e for e in _container(edge)["env"] if e["name"] == "TICKMESH_JWT_SECRET")
    assert secret["valueFrom"]["secretKeyRef"] == {"name": "jwt", "key": "jwt-secret"}
    assert ("PodMonitor", "tm-tickmesh") in out
    assert ("Deployment", "tm-tickmesh-broker") not in out


def test_mistakes_fail_the_render(render):
    assert "not a first-class setting" in render({"edge": {"settings": {"maxSubscriptons": 3}}}, expect_error=True)
    assert "not a first-class setting" in render(
        {"services": {"portfolio-valuer": {"settings": {"shards": 3}}}}, expect_error=True
    ), "the chart sets the shard count"


def test_market_feed_settings_render_and_dev_mode_stays_off(render):
    out = render()
    assert _env(out[("Deployment", "tm-tickmesh-edge")])["EDGE_DEV_MODE"] == "false"
    feed = _env(out[("Deployment", "tm-tickmesh-market-feed")])
    assert "FEED_REPLAY_FILE" not in feed and "FEED_COINBASE_URL" not in feed, "null keeps the code's default"
    out = render(
        {
            "services": {
                "market-feed": {
                    "settings": {
                        "provider": "binance",
                        "symbols": ["BTC-USDT", "ETH-USDT"],
                        "replayFile": "/data/ticks.csv",
                        "replaySpeed": 10,
                        "replayLoop": False,
                        "coinbaseUrl": "wss://cb.example",
                        "coinbaseHeartbeatTimeoutSeconds": 5,
                        "binanceUrl": "wss://stream.binance.us:9443",
                        "binanceIdleTimeoutSeconds": 90,
                        "reconnectMaxSeconds": 60,
                        "staleAfterSeconds": 12.5,
                        "maxHzPerSymbol": 20,
                    }
                }
            },
            "edge": {"settings": {"pollWaitSeconds": 20, "ticketTtlSeconds": 30, "jwksRefetchCooldownSeconds": 15}},
        }
    )
    feed = _env(out[("Deployment", "tm-tickmesh-market-feed")])
    assert {k: feed[k] for k in feed if k.startswith("FEED_")} == {
        "FEED_PROVIDER": "binance",
        "FEED_SYMBOLS": "BTC-USDT,ETH-USDT",
        "FEED_RATE": "100",
        "FEED_REPLAY_FILE": "/data/ticks.csv",
        "FEED_REPLAY_SPEED": "10",
        "FEED_REPLAY_LOOP": "false",
        "FEED_COINBASE_URL": "wss://cb.example",
        "FEED_COINBASE_HEARTBEAT_TIMEOUT_S": "5",
        "FEED_BINANCE_URL": "wss://stream.binance.us:9443",
        "FEED_BINANCE_IDLE_TIMEOUT_S": "90",
        "FEED_RECONNECT_MAX_S": "60",
        "FEED_STALE_AFTER_S": "12.5",
        "FEED_MAX_HZ_PER_SYMBOL": "20",
    }
    edge = _env(out[("Deployment", "tm-tickmesh-edge")])
    assert (edge["EDGE_POLL_WAIT_S"], edge["EDGE_TICKET_TTL_S"], edge["EDGE_JWKS_REFETCH_COOLDOWN_S"]) == (
        "20",
        "30",
        "15",
    )


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
