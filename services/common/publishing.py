"""How the domain services put messages on NATS: the two publishing rules the edge relies on.

* State channels (``portfolio``): a core publish carrying ``Tm-Seq``, a version that strictly
  increases per key (:class:`Versions`); ``TM_USER_STATE`` keeps the latest as the snapshot.
* Event channels (trades, notifications, alerts, announcements, news): a JetStream publish with
  ``Nats-Msg-Id`` set to the event's own id (:func:`publish_event`), so a retried publish inside
  the duplicate window is stored once.

Every payload goes through :func:`tickmesh.contracts.messages.encode`: nothing that breaks the
contract leaves a service.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any, Mapping

from tickmesh.contracts import messages
from tickmesh.contracts.channels import SUBJECT_ROOT, Kind
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
    """The subject matching ``kind``'s channel of every user (``tm.user.*.trades``).

    ``channels.user_subject`` refuses ``*`` as a user id on purpose, so a wildcard is built here,
    for service-side subscriptions only; a test checks it matches what ``user_subject`` builds.
    """
    if not kind.per_user:
        raise ValueError(f"{kind.value} is not a per-user channel")
    return f"{SUBJECT_ROOT}.user.*.{kind.value}"


class Versions:
    """Per-key versions for state channels: ``max(previous + 1, now_us)``, so they increase
    strictly within a process and keep increasing across restarts (the clock moved on)."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def next(self, key: str, now: int) -> int:
        v = max(self._last.get(key, 0) + 1, now)
        self._last[key] = v
        return v


async def publish_event(js: Any, subject: str, schema: str, obj: Mapping[str, Any], event_id: str) -> int:
    """Validate ``obj`` against ``schema`` and persist it once; returns the stream sequence.

    Raises :class:`messages.ContractError` (a bug: nothing is sent) or a NATS error (the caller
    may retry with the same ``event_id``; the duplicate window absorbs it).
    """
    payload = messages.encode(schema, obj)
    ack = await js.publish(subject, payload, headers={MSG_ID_HEADER: event_id})
    return ack.seq


async def publish_state(nc: Any, subject: str, schema: str, obj: Mapping[str, Any], version: int) -> None:
    """Validate and publish one state message with its ``Tm-Seq`` version."""
    await nc.publish(subject, messages.encode(schema, obj), headers={SEQ_HEADER: str(version)})
