"""Every Prometheus metric tickmesh exports, in one registry, with bounded labels.

Each process (the edge and every service) exports the metrics below that apply to it; the
component is told apart by Prometheus' target labels (``job``, ``pod``), so no metric carries a
``service`` label. Metric objects are private: callers use the functions, which clamp every label
to its documented set (anything else becomes ``"other"``), so a bug in a caller can never create
a label per user, symbol or connection.

Integration API (what to call, and where)
-----------------------------------------
Every process
    ``build_info(component)``                          once at start-up.
    ``nats_status(up)``                                pass as ``on_status=`` to ``natsconn.connect``
                                                       (counts disconnects, reconnects, sets the gauge);
                                                       call ``nats_status(True)`` once after the first connect.
    ``nats_error(exc)``                                from the NATS ``error_cb`` (slow consumers are counted apart).
    ``messages_in(cls, n, nbytes)`` / ``messages_out(cls, n, nbytes)``
                                                       per NATS message consumed / published (services),
                                                       per upstream message (edge ``Upstream._on_msg``) and per
                                                       WebSocket message written (edge writer, ``n`` = frames in it).
    ``dropped(reason, n)``                             a message thrown away (bad payload, contract breach, ...).
    ``command_done(name, result, seconds)``            edge: per ``cmd`` round trip; services: in
                                                       ``serve_commands.on_request`` (result "ok" or an error name).
    ``flag_evaluated(flag, variant, n)``               by ``tickmesh.flags.Flags`` for every evaluation it makes.
Services
    ``serve(settings)``                                after ``logs.setup``: serves ``/metrics`` on ``METRICS_PORT``
                                                       (0, the default, serves nothing); ``MetricsSettings`` holds it.
    ``observe_publish_latency(cls, provider_ts_us)``   just after publishing a message derived from a provider event.
market-feed
    ``provider_status(provider, connected)``, ``provider_message(provider)`` (per raw provider message, O(1) dict
    store), ``provider_gap(provider, n)``, ``provider_reconnect(provider)``.
Edge
    ``render(accept)``                                 from a Quart ``GET /metrics`` route: (body, content type)::

        @app.get("/metrics")
        async def metrics_route():
            body, content_type = metrics.render(request.headers.get("Accept"))
            return body, 200, {"Content-Type": content_type}

    ``messages_in("control" | "command", 1, len)``     per client frame read (``cmd`` frames are "command"): the
                                                       denominator of the error-rate SLO.
    ``conn = connection_opened(transport, encoding)``  when a socket is accepted; ``conn.closed(code)`` exactly once
                                                       when it ends (``finally``), with the close code sent or received.
    ``subscription_added(cls)`` / ``subscription_removed(cls)``; ``upstream_subjects(n)`` after ensure/release.
    ``observe_latency(cls, provider_ts_us)``           when a frame carrying a provider timestamp is handed to the
                                                       socket (once per frame, or the oldest frame of each batch).
    ``queue_depth(frames, nbytes)``                    in the writer, with the outbox size just before each drain.
    ``conflated(n)``, ``slow_consumer(cls)``, ``error_sent(code)``, ``auth_failed(reason)``,
    ``rate_limited(limit)``, ``recovery(result, replayed)``.

Allowed label values (anything else is recorded as ``"other"``)
---------------------------------------------------------------
transport: ws, sse, poll · encoding: json, msgpack · class: state, event, command, control
direction: in, out · code: the numbers in contracts/codes.toml plus WebSocket 1001, 1006, 1011, 1012
reason (auth): see ``AUTH_REASONS`` · limit: see ``RATE_LIMITS`` · reason (dropped): see ``DROP_REASONS``
result (recovery): see ``RECOVERY_RESULTS`` · command: the names in contracts/commands.toml
result (command): ok or an error name from codes.toml · provider: lower-case names, at most 16 distinct.
flag: flag names (grammar of tickmesh.flags), at most 256 · variant (flags): see ``FLAG_VARIANTS``.

Cost: a counter increment is a lock and an add, about 0.5 µs on the 2-core development machine
(``ops/otel/overhead.py`` measures it); the hot-path helpers use label children bound at import,
so no label lookup happens per message. Count per batch (``n=``) rather than per frame where a
batch exists, e.g. once per WebSocket message written.

``MetricsSettings`` (``METRICS_PORT``, ``METRICS_HOST``) and ``tracing.TracingSettings`` are
shared by every process; ``tickmesh settings`` lists them once ``cli._settings_classes`` adds them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from tickmesh.config import setting
from tickmesh.contracts.codes import CLOSES, ERRORS
from tickmesh.contracts.commands import commands

# ``*_created`` series double the exposition for no use here (Prometheus ignores them).
disable_created_metrics()

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

OTHER = "other"
TRANSPORTS = ("ws", "sse", "poll")
ENCODINGS = ("json", "msgpack")
CLASSES = ("state", "event", "command", "control")
DIRECTIONS = ("in", "out")
CLOSE_CODES = tuple(sorted({str(c.code) for c in CLOSES.values()} | {"1001", "1006", "1011", "1012"}))
ERROR_CODES = tuple(sorted(str(e.code) for e in ERRORS.values()))
AUTH_REASONS = (
    "missing",
    "malformed",
    "bad_signature",
    "expired",
    "not_yet_valid",
    "wrong_audience",
    "wrong_issuer",
    "revoked",
    "timeout",
    "forbidden_origin",
)
RATE_LIMITS = ("command", "connection", "http", "head_timeout")
DROP_REASONS = ("bad_payload", "invalid", "overflow", "stale")
RECOVERY_RESULTS = ("replayed", "snapshot", "gap", "unavailable", "from_memory")
COMMAND_RESULTS = ("ok", *ERRORS)
# Closes that count against connection stability (SLO: >= 99.9% of connections end without one).
UNSTABLE_CLOSE_CODES = ("1006", "1011", "4001", "4002")

# Latency buckets bracket the 100 ms p99 objective finely (histogram_quantile interpolates
# linearly inside a bucket, so the buckets around 100 ms are narrow).
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.125,
    0.15,
    0.2,
    0.3,
    0.5,
    1.0,
    2.5,
    5.0,
)
COMMAND_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
QUEUE_FRAME_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
QUEUE_BYTE_BUCKETS = (256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216)
DURATION_BUCKETS = (1, 10, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 24 * 3600)


def _counter(name: str, doc: str, labels: Iterable[str] = ()) -> Counter:
    return Counter(name, doc, tuple(labels), registry=REGISTRY)


def _gauge(name: str, doc: str, labels: Iterable[str] = ()) -> Gauge:
    return Gauge(name, doc, tuple(labels), registry=REGISTRY)


def _histogram(name: str, doc: str, buckets: tuple, labels: Iterable[str] = ()) -> Histogram:
    return Histogram(name, doc, tuple(labels), registry=REGISTRY, buckets=buckets)


# --- every process ---------------------------------------------------------------------------
_BUILD = _gauge(
    "tickmesh_build_info", "Always 1; labels say which component and version runs", ("component", "version")
)
_MESSAGES = _counter("tickmesh_messages_total", "Messages consumed (in) or produced (out)", ("direction", "class"))
_BYTES = _counter(
    "tickmesh_message_bytes_total", "Payload bytes consumed (in) or produced (out)", ("direction", "class")
)
_DROPPED = _counter("tickmesh_dropped_messages_total", "Messages thrown away, by reason", ("reason",))
_PUBLISH_LATENCY = _histogram(
    "tickmesh_publish_latency_seconds", "Provider timestamp to publication on NATS", LATENCY_BUCKETS, ("class",)
)
_NATS_UP = _gauge("tickmesh_nats_connected", "1 while the NATS connection is up, else 0")
_NATS_RECONNECTS = _counter("tickmesh_nats_reconnects_total", "NATS reconnections")
_NATS_DISCONNECTS = _counter("tickmesh_nats_disconnects_total", "NATS disconnections")
_NATS_ERRORS = _counter("tickmesh_nats_errors_total", "NATS client errors", ("kind",))
_COMMANDS = _counter("tickmesh_commands_total", "Commands handled, by command and result", ("command", "result"))
_COMMAND_SECONDS = _histogram(
    "tickmesh_command_duration_seconds",
    "Command latency (edge: round trip; service: handler)",
    COMMAND_BUCKETS,
    ("command",),
)

# --- edge --------------------------------------------------------------------------------------
_CONNS = _gauge("tickmesh_edge_connections", "Open client connections", ("transport", "encoding"))
_OPENED = _counter("tickmesh_edge_connections_opened_total", "Client connections accepted", ("transport", "encoding"))
_CLOSED = _counter(
    "tickmesh_edge_connections_closed_total", "Client connections ended, by close code", ("transport", "code")
)
_CONN_SECONDS = _histogram(
    "tickmesh_edge_connection_duration_seconds", "How long client connections last", DURATION_BUCKETS
)
_SUBS = _gauge("tickmesh_edge_subscriptions", "Client subscriptions held, by channel class", ("class",))
_UPSTREAM = _gauge("tickmesh_edge_upstream_subjects", "NATS subscriptions held by this edge (one per subject)")
_E2E = _histogram(
    "tickmesh_e2e_latency_seconds", "Provider timestamp to frame handed to the socket", LATENCY_BUCKETS, ("class",)
)
_QUEUE_FRAMES = _histogram(
    "tickmesh_edge_queue_depth_frames", "Frames pending in a connection's outbox at drain", QUEUE_FRAME_BUCKETS
)
_QUEUE_BYTES = _histogram(
    "tickmesh_edge_queue_depth_bytes", "Bytes pending in a connection's outbox at drain", QUEUE_BYTE_BUCKETS
)
_CONFLATED = _counter("tickmesh_edge_conflated_total", "State frames replaced by a newer one before sending")
_SLOW = _counter("tickmesh_edge_slow_consumers_total", "Connections whose outbox overflowed", ("class",))
_ERRORS_SENT = _counter("tickmesh_edge_errors_total", "err frames sent, by error code", ("code",))
_AUTH_FAILED = _counter("tickmesh_edge_auth_failures_total", "Authentication failures, by reason", ("reason",))
_RATE_LIMITED = _counter("tickmesh_edge_rate_limited_total", "Requests refused by a rate limit", ("limit",))
_RECOVERY = _counter("tickmesh_edge_recovery_requests_total", "Resume requests, by outcome", ("result",))
_REPLAYED = _counter("tickmesh_edge_recovery_replayed_messages_total", "Messages replayed to resuming clients")
_AUDIT = _counter(
    "tickmesh_edge_audit_records_total",
    "Trade-delivery audit records written to TM_TRADE_AUDIT, or dropped (buffer full)",
    ("result",),
)
_CAUSAL = _counter(
    "tickmesh_edge_causal_holds_total",
    "Portfolio frames held for the fill they include: released after it, or at the timeout",
    ("result",),
)


def flag_evaluated(flag: str, variant: str, n: int = 1) -> None:
    """Count ``n`` evaluations of ``flag`` that gave ``variant`` (bounded: at most 256 flag
    names, the variants in ``FLAG_VARIANTS``; anything beyond is ``other``)."""
    child = _flag_children.get((flag, variant))
    if child is None:
        if flag not in _flag_names and _FLAG_RE.fullmatch(flag) and len(_flag_names) < _MAX_FLAG_LABELS:
            _flag_names.add(flag)
        name = flag if flag in _flag_names else OTHER
        label = _clamp(variant, FLAG_VARIANTS)
        child = _FLAG_EVALS.labels(name, label)
        if name != OTHER and label != OTHER:
            _flag_children[(flag, variant)] = child
    child.inc(n)  # type: ignore[attr-defined]


# --- market-feed -------------------------------------------------------------------------------
_PROVIDER_UP = _gauge("tickmesh_provider_connected", "1 while the provider connection is up", ("provider",))
_PROVIDER_GAPS = _counter("tickmesh_provider_gaps_total", "Sequence gaps detected in provider data", ("provider",))
_FLAG_EVALS = _counter(
    "tickmesh_flag_evaluations_total",
    "Feature-flag evaluations, by flag and variant (on/off, default/rule/rollout, missing)",
    ("flag", "variant"),
)
_PROVIDER_RECONNECTS = _counter("tickmesh_provider_reconnects_total", "Provider reconnections", ("provider",))


# --- label clamping ------------------------------------------------------------------------------
def _clamp(value: object, allowed: tuple[str, ...]) -> str:
    text = str(value)
    return text if text in allowed else OTHER


_PROVIDER_RE = re.compile(r"[a-z0-9_-]{1,32}")
_MAX_PROVIDERS = 16
_providers: dict[str, float] = {}  # provider -> time.time() of its last message


def _provider(name: str) -> str:
    if name in _providers:
        return name
    if _PROVIDER_RE.fullmatch(name) and len(_providers) < _MAX_PROVIDERS:
        return name
    return OTHER


FLAG_VARIANTS = ("on", "off", "default", "rule", "rollout", "missing")
_FLAG_RE = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
_MAX_FLAG_LABELS = 256  # tickmesh.flags.model.MAX_FLAGS: one label per flag that can exist
_flag_names: set[str] = set()
_flag_children: dict[tuple[str, str], object] = {}


def _code(code: object, allowed: tuple[str, ...]) -> str:
    try:
        return _clamp(int(code), allowed)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return OTHER


# Children bound once: the per-message helpers below do no label lookups. Only the classes that
# occur are bound (bound children appear at 0 from the first scrape); others are bound on demand.
_MSG_IN = {c: (_MESSAGES.labels("in", c), _BYTES.labels("in", c)) for c in CLASSES}
_MSG_OUT = {c: (_MESSAGES.labels("out", c), _BYTES.labels("out", c)) for c in CLASSES}
_E2E_BY = {c: _E2E.labels(c) for c in ("state", "event")}
_PUB_BY = {c: _PUBLISH_LATENCY.labels(c) for c in ("state", "event")}
_SUBS_BY = {c: _SUBS.labels(c) for c in ("state", "event")}


def _slow_child(cache: dict, cls: str, make):
    """The child for a class not bound above (clamped to ``CLASSES``; a rare path)."""
    label = _clamp(cls, CLASSES)
    child = cache.get(label)
    if child is None:
        child = cache[label] = make(label)
    return child


def _pair(direction: str):
    return lambda c: (_MESSAGES.labels(direction, c), _BYTES.labels(direction, c))


_NATS_UP.set(0)


# --- every process ---------------------------------------------------------------------------
def build_info(component: str, version: str | None = None) -> None:
    """Publish ``tickmesh_build_info{component, version} 1`` (component: edge or a service name)."""
    if version is None:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as pkg_version

        try:
            version = pkg_version("tickmesh")
        except PackageNotFoundError:
            version = "unknown"
    _BUILD.labels(component[:32], version[:32]).set(1)


def messages_in(cls: str, n: int = 1, nbytes: int = 0) -> None:
    """Count ``n`` messages of channel class ``cls`` (``nbytes`` payload bytes) consumed."""
    pair = _MSG_IN.get(cls) or _slow_child(_MSG_IN, cls, _pair("in"))
    pair[0].inc(n)
    if nbytes:
        pair[1].inc(nbytes)


def messages_out(cls: str, n: int = 1, nbytes: int = 0) -> None:
    """Count ``n`` messages of channel class ``cls`` (``nbytes`` bytes) published or written."""
    pair = _MSG_OUT.get(cls) or _slow_child(_MSG_OUT, cls, _pair("out"))
    pair[0].inc(n)
    if nbytes:
        pair[1].inc(nbytes)


def dropped(reason: str, n: int = 1) -> None:
    _DROPPED.labels(_clamp(reason, DROP_REASONS)).inc(n)


def _age_seconds(provider_ts_us: int, now: float | None) -> float:
    return max(0.0, (time.time() if now is None else now) - provider_ts_us / 1e6)


def observe_publish_latency(cls: str, provider_ts_us: int, now: float | None = None) -> None:
    """Record provider timestamp (µs since the epoch, as in the contracts) to now, on publish."""
    (_PUB_BY.get(cls) or _slow_child(_PUB_BY, cls, _PUBLISH_LATENCY.labels)).observe(_age_seconds(provider_ts_us, now))


_nats = {"up": False, "was_down": False}


def nats_status(up: bool) -> None:
    """``on_status`` callback for :func:`tickmesh.natsconn.connect` (a plain function, which
    ``connect`` accepts): sets ``tickmesh_nats_connected``; an up after a down counts a reconnect.
    Call ``nats_status(True)`` once after the first connect (``connect`` reports only changes)."""
    if up and not _nats["up"]:
        if _nats["was_down"]:
            _NATS_RECONNECTS.inc()
        _NATS_UP.set(1)
    elif not up and _nats["up"]:
        _nats["was_down"] = True
        _NATS_DISCONNECTS.inc()
        _NATS_UP.set(0)
    _nats["up"] = up


def nats_error(exc: BaseException) -> None:
    kind = "slow_consumer" if type(exc).__name__ == "SlowConsumerError" else OTHER
    _NATS_ERRORS.labels(kind).inc()


def command_done(name: str, result: str, seconds: float) -> None:
    """Count a finished command (``result``: "ok" or an error name such as "timeout")."""
    command = name if name in commands() else OTHER
    _COMMANDS.labels(command, _clamp(result, COMMAND_RESULTS)).inc()
    _COMMAND_SECONDS.labels(command).observe(seconds)


# --- market-feed -------------------------------------------------------------------------------
def provider_status(provider: str, connected: bool) -> None:
    label = _provider(provider)
    _providers.setdefault(label, 0.0)
    _PROVIDER_UP.labels(label).set(1 if connected else 0)


def provider_message(provider: str, now: float | None = None) -> None:
    """Note that ``provider`` just delivered a message (cost: one dict store)."""
    _providers[provider if provider in _providers else _provider(provider)] = time.time() if now is None else now


def provider_gap(provider: str, n: int = 1) -> None:
    _PROVIDER_GAPS.labels(_provider(provider)).inc(n)


def provider_reconnect(provider: str) -> None:
    _PROVIDER_RECONNECTS.labels(_provider(provider)).inc()


class _ProviderAges:
    """Computes ``tickmesh_provider_last_message_age_seconds`` at scrape time, so the hot path
    only stores a timestamp and the age is right even when no message arrives any more."""

    def collect(self):
        family = GaugeMetricFamily(
            "tickmesh_provider_last_message_age_seconds",
            "Seconds since the provider's last message",
            labels=("provider",),
        )
        now = time.time()
        for provider, last in list(_providers.items()):
            if last:
                family.add_metric((provider,), max(0.0, now - last))
        yield family

    def describe(self):
        return list(self.collect())


REGISTRY.register(_ProviderAges())


# --- edge --------------------------------------------------------------------------------------
class Connection:
    """One client connection's metrics; :meth:`closed` must be called exactly once."""

    __slots__ = ("transport", "opened_at", "_gauge", "_done")

    def __init__(self, transport: str, encoding: str) -> None:
        self.transport = _clamp(transport, TRANSPORTS)
        key = (self.transport, _clamp(encoding, ENCODINGS))
        children = _OPEN_CHILDREN.get(key)
        if children is None:  # labels() costs a few µs: bound once per pair, not per connection
            children = _OPEN_CHILDREN[key] = (_CONNS.labels(*key), _OPENED.labels(*key))
        self._gauge = children[0]
        self._gauge.inc()
        children[1].inc()
        self.opened_at = time.monotonic()
        self._done = False

    def closed(self, code: int | str) -> None:
        """Record the end of the connection with its close code. Later calls do nothing."""
        if self._done:
            return
        self._done = True
        self._gauge.dec()
        key = (self.transport, _code(code, CLOSE_CODES))
        child = _CLOSED_CHILDREN.get(key)
        if child is None:
            child = _CLOSED_CHILDREN[key] = _CLOSED.labels(*key)
        child.inc()
        _CONN_SECONDS.observe(time.monotonic() - self.opened_at)


_OPEN_CHILDREN: dict[tuple[str, str], tuple[Any, Any]] = {}
_CLOSED_CHILDREN: dict[tuple[str, str], Any] = {}


def connection_opened(transport: str, encoding: str = "json") -> Connection:
    return Connection(transport, encoding)


def subscription_added(cls: str) -> None:
    (_SUBS_BY.get(cls) or _slow_child(_SUBS_BY, cls, _SUBS.labels)).inc()


def subscription_removed(cls: str) -> None:
    (_SUBS_BY.get(cls) or _slow_child(_SUBS_BY, cls, _SUBS.labels)).dec()


def upstream_subjects(n: int) -> None:
    _UPSTREAM.set(n)


def observe_latency(cls: str, provider_ts_us: int, now: float | None = None) -> None:
    """End-to-end latency: provider timestamp (µs since the epoch) to handed to the socket."""
    (_E2E_BY.get(cls) or _slow_child(_E2E_BY, cls, _E2E.labels)).observe(_age_seconds(provider_ts_us, now))


def queue_depth(frames: int, nbytes: int) -> None:
    _QUEUE_FRAMES.observe(frames)
    _QUEUE_BYTES.observe(nbytes)


def conflated(n: int = 1) -> None:
    if n:
        _CONFLATED.inc(n)


def slow_consumer(cls: str = "event") -> None:
    _SLOW.labels(_clamp(cls, CLASSES)).inc()


def error_sent(code: int) -> None:
    _ERRORS_SENT.labels(_code(code, ERROR_CODES)).inc()


def auth_failed(reason: str) -> None:
    _AUTH_FAILED.labels(_clamp(reason, AUTH_REASONS)).inc()


def rate_limited(limit: str) -> None:
    _RATE_LIMITED.labels(_clamp(limit, RATE_LIMITS)).inc()


def audit_records(result: str, n: int) -> None:
    _AUDIT.labels(_clamp(result, ("written", "dropped"))).inc(n)


def causal_hold(result: str) -> None:
    _CAUSAL.labels(_clamp(result, ("released", "timeout"))).inc()


def recovery(result: str, replayed: int = 0) -> None:
    _RECOVERY.labels(_clamp(result, RECOVERY_RESULTS)).inc()
    if replayed:
        _REPLAYED.inc(replayed)


# --- exposition ----------------------------------------------------------------------------------
def render(accept: str | None = None) -> tuple[bytes, str]:
    """The exposition of every tickmesh metric: ``(body, content_type)``.

    ``accept`` is the request's Accept header: OpenMetrics when the scraper asks for it, the
    Prometheus text format otherwise. The edge's ``GET /metrics`` route returns exactly this.
    """
    encoder, content_type = choose_encoder(accept or "")
    return encoder(REGISTRY), content_type


@dataclass(frozen=True)
class MetricsSettings:
    port: int = setting(
        "METRICS_PORT",
        0,
        "Services: TCP port serving /metrics; 0 serves nothing (the edge serves /metrics on EDGE_PORT)",
    )
    host: str = setting("METRICS_HOST", "0.0.0.0", "Services: address the /metrics server listens on")


def serve(settings: MetricsSettings | None = None):
    """Serve ``/metrics`` from a daemon thread (prometheus_client's server) when a port is set.

    Returns the server (call ``shutdown()`` to stop it), or ``None`` when ``METRICS_PORT`` is 0.
    A scrape never blocks the event loop for longer than the collection itself (GIL-bound).
    """
    if settings is None:
        from tickmesh.config import load

        settings = load(MetricsSettings)
    if not settings.port:
        return None
    server, _thread = start_http_server(settings.port, settings.host, registry=REGISTRY)
    return server


def exported_names() -> set[str]:
    """Every sample name the registry can emit (``_bucket``, ``_sum``, ``_count`` and ``_total``
    included), for checking dashboards and alert rules against the code."""
    names: set[str] = set()
    for family in REGISTRY.collect():
        base = family.name
        if family.type == "counter":
            names |= {base + "_total"}
        elif family.type in ("histogram", "gaugehistogram"):
            names |= {base + "_bucket", base + "_sum", base + "_count"}
        elif family.type == "summary":
            names |= {base, base + "_sum", base + "_count"}
        elif family.type == "info":
            names |= {base + "_info"}
        else:
            names.add(base)
        names |= {s.name for s in family.samples}
    return names


def value(name: str, **labels: str) -> float:
    """The current value of one sample (0 when absent): for tests and health checks."""
    return REGISTRY.get_sample_value(name, labels) or 0.0
