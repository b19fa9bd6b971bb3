"""Trace context for what a publisher sends, and the ids and versions messages carry.

**Trace context.** Inside ``with traced(tracing.receive(...)):`` (or any sampled
:mod:`tickmesh.tracing` trace) every publish adds that trace's ``traceparent`` to its headers,
so the next hop continues the same trace; code that publishes need not know whether it runs
traced. The trace is held in a context variable: it follows ``await`` and is copied into tasks
created inside the block, and nothing else sees it. A service outside this repository that uses
OpenTelemetry itself gets its *current span* injected instead (event and portfolio messages;
ticks take their trace explicitly, to keep the hot path to one context-variable lookup).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace as otel_trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tickmesh import tracing

_current: ContextVar[Any] = ContextVar("tickmesh_trace", default=tracing.UNSAMPLED)
_propagator = TraceContextTextMapPropagator()


class traced:
    """``with traced(tr):`` enters ``tr`` (a :mod:`tickmesh.tracing` trace, sampled or not) and
    makes it the one whose context every publish injects until the block ends. An unsampled
    ``tr`` changes nothing."""

    __slots__ = ("tr", "_token")

    def __init__(self, tr: Any) -> None:
        self.tr = tr
        self._token: Any = None

    def __enter__(self) -> Any:
        self.tr.__enter__()
        if self.tr.sampled:
            self._token = _current.set(self.tr)
        return self.tr

    def __exit__(self, *exc: Any) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
        self.tr.__exit__(*exc)


def current_trace() -> Any:
    """The trace entered by the innermost :class:`traced` block (``tracing.UNSAMPLED`` if none)."""
    return _current.get()


def trace_headers(headers: dict[str, str] | None = None) -> dict[str, str] | None:
    """``headers`` with the current trace's context added: the :class:`traced` block's, else the
    caller's own sampled OpenTelemetry span, else ``headers`` unchanged."""
    tr = _current.get()
    if tr.sampled:
        return tr.inject(headers)
    ctx = otel_trace.get_current_span().get_span_context()
    if ctx.is_valid and ctx.trace_flags.sampled:
        headers = {} if headers is None else headers
        _propagator.inject(headers)
    return headers


def now_us() -> int:
    return time.time_ns() // 1000


def new_id(prefix: str) -> str:
    """A fresh unique id such as ``n-1f3c...`` (uuid4, 32 hex digits)."""
    return f"{prefix}-{uuid.uuid4().hex}"


def stable_id(prefix: str, *parts: str) -> str:
    """An id derived from ``parts`` (the same parts give the same id): used where a retry must
    name the same thing (an order from (user, client_order_id), a notification from its cause)."""
    digest = hashlib.blake2b("\x00".join(parts).encode(), digest_size=12).hexdigest()
    return f"{prefix}-{digest}"


class Versions:
    """Per-key versions for state channels (the ``Tm-Seq`` header): ``max(previous + 1, now)``
    with ``now`` in microseconds, so they increase strictly within a process and keep increasing
    across restarts (the clock moved on)."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def next(self, key: str, now: int) -> int:
        last = self._last.get(key, 0)
        v = now if now > last else last + 1
        self._last[key] = v
        return v

    def forget(self, key: str) -> None:
        self._last.pop(key, None)
