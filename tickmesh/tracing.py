"""OpenTelemetry tracing across NATS hops, at (almost) no cost for messages that are not sampled.

A message is traced from the provider to the browser: market-feed (receive → normalise →
publish), portfolio-valuer and notifier (receive → work → publish), and the edge's fan-out. W3C
trace context (``traceparent``/``tracestate``) travels in the NATS message headers.

Sampling is decided once, at the head (where a message enters tickmesh), *before* any span or
header exists: :func:`begin` draws one random number and, when the message is not sampled,
returns the shared :data:`UNSAMPLED` object whose methods do nothing. An unsampled message
carries no trace header, so every later hop sees at once (one dict lookup in :func:`receive`)
that there is nothing to continue. Commands (orders) are always sampled (:func:`command`).

Integration API (what to call, and where)
-----------------------------------------
Every process, at start-up after ``logs.setup``: ``tracing.setup("edge" | "market-feed" | ...)``;
at shutdown (``finally``): ``tracing.shutdown()`` (flushes pending spans).

market-feed, per raw provider message (the head)::

    with tracing.begin("feed.tick", attributes={"tickmesh.provider": name}) as tr:
        with tr.step("feed.normalise"):
            tick = normalise(raw)
        with tr.step("feed.publish", kind=tracing.PRODUCER):
            headers = tr.inject({SEQ_HEADER: str(seq)})   # unchanged dict when unsampled
            await nc.publish(subject, payload, headers=headers)

portfolio-valuer and notifier, per NATS message consumed (continue the publisher's trace)::

    with tracing.receive("valuer.revalue", msg.headers) as tr:
        ...
        await nc.publish(subject, payload, headers=tr.inject({SEQ_HEADER: seq}))

edge, in ``Upstream._on_msg`` around ``hub.publish`` (a CONSUMER span, child of *and* linked to
the publisher's span, per the OpenTelemetry messaging conventions for fan-out)::

    with tracing.receive("edge.fanout", msg.headers, attributes={"messaging.destination.name": subject}):
        self.hub.publish(subject, seq, payload)

edge, per ``cmd`` frame (always sampled), and the service answering it::

    with tracing.command(name, attributes={"tickmesh.cmd_id": cmd_id}) as tr:
        reply = await nc.request(subject, payload, headers=tr.inject({}), timeout=...)
    # services/runner.py serve_commands.on_request:
    with tracing.receive(f"{service} {req.name}", msg.headers, kind=tracing.SERVER) as tr: ...

Never put a token, an order's details or a price in an attribute; ids and subjects are fine.
To lead from a log line to its trace: ``log.info(..., extra={..., **tracing.log_fields()})``.

Fast hot paths: ``if tracing.should_sample(): <traced code, begin(..., force=True)> else: <plain
code>`` at the head, and ``if tracing.carries_trace(msg.headers)`` (or the inlined
``"traceparent" in headers``) at a hop, cost ~60 ns per unsampled message (ops/otel/overhead.py).

Configuration (standard ``OTEL_*`` variables, read by the SDK): spans are exported with OTLP/HTTP
when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set, to the
console when ``OTEL_TRACES_EXPORTER=console``; otherwise (or with ``OTEL_SDK_DISABLED=true`` or
``OTEL_TRACES_EXPORTER=none``) tracing is off and :func:`begin` never samples.
``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` name the process. The head-sampling ratio
is ``TICKMESH_TRACE_SAMPLE_RATIO`` (default 0.01); when that is unset, ``OTEL_TRACES_SAMPLER_ARG``
is used if ``OTEL_TRACES_SAMPLER`` is ``traceidratio`` or ``parentbased_traceidratio``.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult, TraceIdRatioBased
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tickmesh.config import ConfigError, setting

log = logging.getLogger(__name__)

CONSUMER, PRODUCER, SERVER, CLIENT, INTERNAL = (
    SpanKind.CONSUMER,
    SpanKind.PRODUCER,
    SpanKind.SERVER,
    SpanKind.CLIENT,
    SpanKind.INTERNAL,
)
TRACEPARENT = "traceparent"
SAMPLED_BY = "tickmesh.sampled_by"  # span attribute: "ratio" (head sampling) or "command"
_PROPAGATOR = TraceContextTextMapPropagator()


@dataclass(frozen=True)
class TracingSettings:
    sample_ratio: float = setting(
        "TICKMESH_TRACE_SAMPLE_RATIO", 0.01, "Share of provider messages traced, 0 to 1 (commands are always traced)"
    )
    otlp_endpoint: str = setting(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "",
        "OTLP/HTTP collector URL (e.g. http://otel-collector:4318); empty exports nothing",
    )
    service_name: str = setting("OTEL_SERVICE_NAME", "", "Service name on spans; empty means tickmesh-<component>")

    def validate(self) -> None:
        if not 0.0 <= self.sample_ratio <= 1.0:
            raise ConfigError("TICKMESH_TRACE_SAMPLE_RATIO", str(self.sample_ratio), "must be in [0, 1]")


class TickmeshSampler(Sampler):
    """Follows the parent's decision; samples roots that :func:`begin` or :func:`command` already
    chose (attribute ``tickmesh.sampled_by``); other roots by trace-id ratio. Head sampling is
    therefore decided exactly once, and never applied twice (which would square the ratio)."""

    def __init__(self, ratio: float) -> None:
        self._ratio = TraceIdRatioBased(ratio)

    def should_sample(
        self, parent_context, trace_id, name, kind=None, attributes=None, links=None, trace_state=None
    ) -> SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        if parent.is_valid:
            decision = Decision.RECORD_AND_SAMPLE if parent.trace_flags.sampled else Decision.DROP
            return SamplingResult(decision, attributes if decision.is_sampled() else None, parent.trace_state)
        if attributes and SAMPLED_BY in attributes:
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)
        return self._ratio.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return f"TickmeshSampler({self._ratio.get_description()})"


# Module state, set by setup(). The hot path reads these globals and nothing else.
_ratio = 0.0
_random = random.random
_tracer: trace.Tracer | None = None
_provider: TracerProvider | None = None


def _env_ratio(environ: Mapping[str, str], settings: TracingSettings) -> float:
    if "TICKMESH_TRACE_SAMPLE_RATIO" not in environ:
        sampler = environ.get("OTEL_TRACES_SAMPLER", "")
        if sampler in ("traceidratio", "parentbased_traceidratio") and environ.get("OTEL_TRACES_SAMPLER_ARG"):
            try:
                return min(max(float(environ["OTEL_TRACES_SAMPLER_ARG"]), 0.0), 1.0)
            except ValueError:
                log.warning("ignoring OTEL_TRACES_SAMPLER_ARG=%r", environ["OTEL_TRACES_SAMPLER_ARG"])
    return settings.sample_ratio


def _exporter_from_env(environ: Mapping[str, str]) -> SpanExporter | None:
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    kind = environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    if kind == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if kind != "otlp":
        return None
    if not (environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        return None
    if environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf") != "http/protobuf":
        log.warning("only OTLP over http/protobuf is installed; using it", extra={"event": "tracing.protocol"})
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # reads endpoint, headers, timeout and compression from OTEL_*


def setup(
    component: str,
    *,
    settings: TracingSettings | None = None,
    exporter: SpanExporter | None = None,
    environ: Mapping[str, str] | None = None,
    set_global: bool = True,
) -> bool:
    """Configure tracing for this process; returns whether tracing is on.

    ``exporter`` (tests) is used synchronously (SimpleSpanProcessor); otherwise the exporter comes
    from the environment and runs in a background batch (BatchSpanProcessor, ``OTEL_BSP_*``).
    When no exporter results, tracing is off: no span is ever created and no header injected.
    Calling ``setup`` again replaces the previous configuration (the old one is shut down).
    """
    global _ratio, _tracer, _provider
    environ = os.environ if environ is None else environ
    if settings is None:
        from tickmesh.config import load

        settings = load(TracingSettings, environ)
    shutdown()
    processor_exporter = exporter if exporter is not None else _exporter_from_env(environ)
    if processor_exporter is None:
        return False
    ratio = _env_ratio(environ, settings)
    # Explicit attributes win over OTEL_RESOURCE_ATTRIBUTES; OTEL_SERVICE_NAME is in settings.
    resource = Resource.create({"service.name": settings.service_name or f"tickmesh-{component}"})
    provider = TracerProvider(sampler=TickmeshSampler(ratio), resource=resource)
    processor = SimpleSpanProcessor(exporter) if exporter is not None else BatchSpanProcessor(processor_exporter)
    provider.add_span_processor(processor)
    if set_global:
        trace.set_tracer_provider(provider)  # a no-op with a warning if one was set already
    _provider, _tracer, _ratio = provider, provider.get_tracer("tickmesh"), ratio
    log.info(
        "tracing on: ratio=%s exporter=%s", ratio, type(processor_exporter).__name__, extra={"event": "tracing.setup"}
    )
    return True


def shutdown() -> None:
    """Flush and stop the span pipeline; afterwards tracing is off until :func:`setup`."""
    global _ratio, _tracer, _provider
    provider, _provider, _tracer, _ratio = _provider, None, None, 0.0
    if provider is not None:
        provider.shutdown()


def enabled() -> bool:
    """Whether spans can be recorded at all (an exporter is configured)."""
    return _tracer is not None


def sample_ratio() -> float:
    """The head-sampling ratio in force (0 while tracing is off)."""
    return _ratio


def should_sample() -> bool:
    """The head-sampling decision for one new message: one random draw, no allocation."""
    return _ratio > 0.0 and _random() < _ratio


def log_fields() -> dict[str, str]:
    """``{"trace_id", "span_id"}`` of the current sampled span (empty when none), to add to a log
    record's ``extra=`` so that a log line leads to its trace."""
    if _tracer is None:
        return {}
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid or not ctx.trace_flags.sampled:
        return {}
    return {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}


def carries_trace(headers: Mapping[str, str] | None) -> bool:
    """Whether NATS ``headers`` carry a sampled trace to continue (one dict lookup)."""
    return bool(headers) and TRACEPARENT in headers  # type: ignore[operator]


class _Unsampled:
    """What every tracing call returns for an unsampled message: all methods do nothing."""

    __slots__ = ()
    sampled = False
    span = None

    def __enter__(self) -> _Unsampled:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def step(self, name: str, *, kind: SpanKind = INTERNAL, attributes: Mapping[str, Any] | None = None):
        return _NULL

    def inject(self, headers: dict[str, str] | None = None) -> dict[str, str] | None:
        return headers

    def set(self, key: str, value: Any) -> None:
        return None


_NULL = nullcontext()
UNSAMPLED = _Unsampled()


class Trace:
    """A sampled message's root span in this process. Use as a context manager: entering makes
    the span current, leaving ends it (recording an exception that escapes)."""

    __slots__ = ("span", "_token")
    sampled = True

    def __init__(self, span: trace.Span) -> None:
        self.span = span
        self._token: object | None = None

    def __enter__(self) -> Trace:
        self._token = otel_context.attach(trace.set_span_in_context(self.span))
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is not None:
            self.span.record_exception(exc)
            self.span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        self.span.end()
        if self._token is not None:
            otel_context.detach(self._token)  # type: ignore[arg-type]  # the token attach() returned
            self._token = None

    def step(self, name: str, *, kind: SpanKind = INTERNAL, attributes: Mapping[str, Any] | None = None):
        """A child span for one stage (normalise, publish, ...), current while the block runs."""
        assert _tracer is not None
        return _tracer.start_as_current_span(name, context=self._context(), kind=kind, attributes=attributes)

    def inject(self, headers: dict[str, str] | None = None) -> dict[str, str]:
        """Add ``traceparent`` (and ``tracestate``) for the innermost current span of this trace
        to ``headers`` (a new dict when None) and return it, for ``nc.publish(headers=...)``."""
        headers = {} if headers is None else headers
        _PROPAGATOR.inject(headers, context=self._context())
        return headers

    def set(self, key: str, value: Any) -> None:
        self.span.set_attribute(key, value)

    def _context(self):
        """The current context if its span belongs to this trace (a step is open), else ours."""
        current = trace.get_current_span().get_span_context()
        if current.trace_id == self.span.get_span_context().trace_id:
            return None
        return trace.set_span_in_context(self.span)


def _root(name: str, kind: SpanKind, attributes: Mapping[str, Any] | None, sampled_by: str) -> Trace:
    attrs = dict(attributes) if attributes else {}
    attrs[SAMPLED_BY] = sampled_by
    assert _tracer is not None
    # An empty context: a head span never hangs under whatever span happens to be current.
    return Trace(_tracer.start_span(name, context=otel_context.Context(), kind=kind, attributes=attrs))


def begin(name: str, *, kind: SpanKind = CONSUMER, attributes: Mapping[str, Any] | None = None, force: bool = False):
    """Start tracing a new message at its head, if the sampling draw says so.

    Returns a :class:`Trace` (sampled) or :data:`UNSAMPLED`; both are context managers with
    ``step``, ``inject`` and ``set``. When unsampled, this costs one call and one random draw.
    ``force=True`` skips the draw: for callers that already asked :func:`should_sample` (the
    fastest hot path: ``if tracing.should_sample(): <traced code> else: <plain code>``).
    """
    if not force and not (_ratio > 0.0 and _random() < _ratio):
        return UNSAMPLED
    if _tracer is None:
        return UNSAMPLED
    return _root(name, kind, attributes, "ratio")


def command(name: str, *, kind: SpanKind = SERVER, attributes: Mapping[str, Any] | None = None):
    """Start tracing a command (an order, ...): always sampled while tracing is on."""
    if _tracer is None:
        return UNSAMPLED
    return _root(name, kind, attributes, "command")


def receive(
    name: str,
    headers: Mapping[str, str] | None,
    *,
    kind: SpanKind = CONSUMER,
    attributes: Mapping[str, Any] | None = None,
    link: bool = True,
):
    """Continue the trace that ``headers`` (a received NATS message's) carry, if any.

    The span is a child of the publisher's span, so the whole path is one trace, and (``link``)
    also links to it, as the messaging conventions ask of a consumer that fans one message out.
    Returns :data:`UNSAMPLED` at the cost of one dict lookup when there is no trace to continue.
    """
    if not headers or TRACEPARENT not in headers or _tracer is None:
        return UNSAMPLED
    parent_ctx = _PROPAGATOR.extract(headers)
    parent = trace.get_current_span(parent_ctx).get_span_context()
    if not parent.is_valid or not parent.trace_flags.sampled:
        return UNSAMPLED
    links = (Link(parent),) if link else ()
    return Trace(_tracer.start_span(name, context=parent_ctx, kind=kind, attributes=attributes, links=links))
