"""The ``flags`` channel: each subscriber's own evaluated feature flags, kept current.

Nothing is published on NATS per user. The edge follows the ``tm_flags`` bucket through
:class:`tickmesh.flags.Flags` (the same API services use) and evaluates each subscribed
connection's flags from its **verified** identity (user id, roles, entitlements), so a client
receives values only: never a rule, a user list, a percentage or another user's value.

Guarantees:

* On subscribe: ``ok``, then the whole evaluated set as one state frame.
* After a stored change (or a schedule boundary), each subscriber whose values changed gets the
  whole set again, within the time the KV watch takes to deliver (milliseconds); a subscriber
  whose values did not change gets nothing. The work is one evaluation per changed flag per
  distinct identity, not per connection.
* ``seq`` is :meth:`Flags.version` (bucket revision x 1e6 + schedule boundaries passed): the
  same on every edge at the same revision, so a client that moves to another edge never goes
  back in time (an older value is dropped by its position check).
* Identity: a connection is evaluated with the identity it holds at the time of the change, so
  a refreshed token's roles apply from the next change.
* Feature gates (:meth:`enabled`) read the same evaluations the client sees, so a server-side
  feature and the UI agree.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from tickmesh.flags import Flags, Subject

from .outbox import Outbox
from .session import Subscribe

if TYPE_CHECKING:
    from .connection import Connection

log = logging.getLogger(__name__)


def subject_of(identity: Any) -> Subject:
    """The evaluation subject for a verified identity (``None``: nobody, the defaults)."""
    if identity is None:
        return Subject()
    return Subject(identity.user, frozenset(identity.roles), frozenset(identity.entitlements))


@dataclass
class _FlagSub:
    conn: Connection
    name: str
    values: dict[str, dict[str, Any]] = field(default_factory=dict)


class FlagFeed:
    def __init__(self) -> None:
        self.flags: Flags | None = None
        self._subs: dict[Outbox, _FlagSub] = {}
        self._listeners: list[Callable[[frozenset[str]], None]] = []

    async def start(self, nc: Any) -> None:
        self.flags = await Flags.open(nc)
        self.flags.on_change(self._changed)

    async def stop(self) -> None:
        if self.flags is not None:
            await self.flags.close()

    def __len__(self) -> int:
        return len(self._subs)

    # -- reading, for gates ------------------------------------------------------------------

    def enabled(self, name: str, identity: Any, default: bool = False) -> bool:
        """Whether boolean flag ``name`` is on for ``identity`` (``default`` when unknown)."""
        if self.flags is None:
            return default
        result = self.flags.evaluate(name, subject_of(identity))
        return default if result is None or type(result.value) is not bool else result.value

    def on_change(self, listener: Callable[[frozenset[str]], None]) -> None:
        """Called after subscribers were updated: gates re-check their connections."""
        self._listeners.append(listener)

    # -- the channel ---------------------------------------------------------------------------

    def attach(self, conn: Connection, sub: Subscribe) -> None:
        """``ok``, then the snapshot; no await, so no change can fall between the two."""
        if not conn.wants(sub.name):
            return
        conn.subscribed(sub, {})
        entry = _FlagSub(conn, sub.name)
        self._subs[conn.outbox] = entry
        if self.flags is not None:
            results = self.flags.evaluate_all(subject_of(conn.session.identity))
            entry.values = {n: r.to_json() for n, r in results.items()}
        self._push(entry)

    def detach(self, outbox: Outbox) -> None:
        self._subs.pop(outbox, None)

    def _push(self, entry: _FlagSub) -> None:
        flags = self.flags
        revision = flags.revision if flags is not None else 0
        seq = flags.version() if flags is not None else 0
        data = {"flags": entry.values, "revision": revision, "ts": time.time_ns() // 1000}
        payload = orjson.dumps(data)
        conn = entry.conn
        conn.outbox.push_state(entry.name, conn.codec.msg(entry.name, seq, payload, lambda: data), time.monotonic())

    def _changed(self, names: frozenset[str]) -> None:
        flags = self.flags
        if flags is None:
            return
        cache: dict[Subject, dict[str, dict[str, Any]]] = {}
        pushed = 0
        for entry in list(self._subs.values()):
            if not entry.conn.wants(entry.name):
                continue
            subject = subject_of(entry.conn.session.identity)
            fresh = cache.get(subject)
            if fresh is None:
                fresh = cache[subject] = {n: r.to_json() for n, r in flags.evaluate_all(subject, names).items()}
            values = {k: v for k, v in entry.values.items() if k not in names}
            values.update(fresh)
            if values != entry.values:
                entry.values = dict(sorted(values.items()))
                self._push(entry)
                pushed += 1
        if pushed:
            log.info(
                "flags changed: %s; %d subscribers updated",
                ",".join(sorted(names))[:200],
                pushed,
                extra={"event": "flags.pushed", "flags": sorted(names)[:20], "subscribers": pushed},
            )
        for listener in list(self._listeners):
            try:
                listener(names)
            except Exception:
                log.exception("a flag gate failed", extra={"event": "flags.gate_failed"})
