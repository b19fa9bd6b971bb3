"""How the domain services put messages on NATS: the two publishing rules the edge relies on.

* State channels (``portfolio``): a core publish carrying ``Tm-Seq``, a version that strictly
  increases per key (:class:`Versions`); ``TM_USER_STATE`` keeps the latest as the snapshot.
* Event channels (trades, notifications, alerts, announcements, news): a JetStream publish with
  ``Nats-Msg-Id`` set to the event's own id (:func:`publish_event`), so a retried publish inside
  the duplicate window is stored once.

Every payload goes through :func:`tickmesh.contracts.messages.encode`: nothing that breaks the
contract leaves a service. Every publish is counted (``tickmesh_messages_total{direction="out"}``).

**Trace context.** Inside ``with traced(tracing.receive(...)):`` (or any sampled trace), the
publish helpers add that trace's ``traceparent`` to the headers, so the next hop continues the
same trace; code that publishes need not know whether it runs traced. The trace is held in a
context variable: it follows ``await`` and is copied into tasks created inside the block, and
nothing else sees it. Outside a sampled trace the headers are left as they are (one
``ContextVar.get`` and a no-op call).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from contextvars import ContextVar
from typing import Any, Mapping

from tickmesh import metrics, tracing
from tickmesh.contracts import messages
from tickmesh.contracts.channels import Kind, wildcard
from tickmesh.contracts.messages import SEQ_HEADER

MSG_ID_HEADER = "Nats-Msg-Id"


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


def user_wildcard(kind: Kind) -> str:
    """The subject matching ``kind``'s channel of every user (``tm.user.*.trades``), for
    service-side subscriptions (built by :func:`tickmesh.contracts.channels.wildcard`)."""
    if not kind.per_user:
        raise ValueError(f"{kind.value} is not a per-user channel")
    return wildcard(kind)


class Versions:
    """Per-key versions for state channels: ``max(previous + 1, now_us)``, so they increase
    strictly within a process and keep increasing across restarts (the clock moved on)."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def next(self, key: str, now: int) -> int:
        v = max(self._last.get(key, 0) + 1, now)
        self._last[key] = v
        return v


_current: ContextVar[Any] = ContextVar("tickmesh_trace", default=tracing.UNSAMPLED)


class traced:
    """``with traced(tr):`` enters ``tr`` (a :mod:`tickmesh.tracing` trace, sampled or not) and
    makes it the one whose context :func:`publish_event`, :func:`publish_state` and
    :func:`trace_headers` inject until the block ends. An unsampled ``tr`` changes nothing."""

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
    """``headers`` with the current trace's context added (unchanged outside a sampled trace),
    for a service that publishes with ``nc.publish`` itself."""
    return _current.get().inject(headers)


async def publish_event(js: Any, subject: str, schema: str, obj: Mapping[str, Any], event_id: str) -> int:
    """Validate ``obj`` against ``schema`` and persist it once; returns the stream sequence.

    Raises :class:`messages.ContractError` (a bug: nothing is sent) or a NATS error (the caller
    may retry with the same ``event_id``; the duplicate window absorbs it).
    """
    payload = messages.encode(schema, obj)
    ack = await js.publish(subject, payload, headers=_current.get().inject({MSG_ID_HEADER: event_id}))
    metrics.messages_out("event", 1, len(payload))
    return ack.seq


async def publish_state(nc: Any, subject: str, schema: str, obj: Mapping[str, Any], version: int) -> None:
    """Validate and publish one state message with its ``Tm-Seq`` version."""
    payload = messages.encode(schema, obj)
    await nc.publish(subject, payload, headers=_current.get().inject({SEQ_HEADER: str(version)}))
    metrics.messages_out("state", 1, len(payload))
