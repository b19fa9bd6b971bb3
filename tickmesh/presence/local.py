"""This edge's own memberships: which connection joined which topic as whom.

Sans-I/O: joins, leaves, closed connections and the time go in; the KV writes to make come out
of :meth:`LocalPresence.take` (the latest value per key, so a burst of changes to one member is
one write).

Guarantees:

* One record per (topic, user) on this edge, whatever the number of that user's connections:
  ``conns`` counts them, ``since`` is when the first one still present joined, ``data`` is the
  most recently set.
* A connection that closes keeps its memberships for ``grace`` seconds: if the user joins the
  topic again meanwhile (a reload, a reconnect to this edge) nothing is written at all, so other
  members see no leave and join. An explicit :meth:`leave` takes effect at once.
* :meth:`records` gives every current record, for writing them all again after NATS was lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .records import Record, member_key


@dataclass(slots=True)
class _Membership:
    user: str
    name: str
    since: int
    data: Any = None
    at: int = 0
    conns: set[str] = field(default_factory=set)
    written: int = 0  # conns in the last record written (kept as is during the grace period)
    grace_until: float | None = None


class LocalPresence:
    def __init__(self, edge: str, *, grace: float) -> None:
        self.edge = edge
        self.grace = grace
        self._members: dict[tuple[str, str], _Membership] = {}  # (topic, user)
        self._by_conn: dict[str, dict[str, str]] = {}  # conn -> topic -> user
        self._writes: dict[str, bytes | None] = {}  # key -> record (None: delete)
        self._in_grace: set[tuple[str, str]] = set()

    # -- input -----------------------------------------------------------------------------

    def joined(self, conn: str, topic: str) -> bool:
        return topic in self._by_conn.get(conn, ())

    def topics_of(self, conn: str) -> list[str]:
        return list(self._by_conn.get(conn, ()))

    def join(self, conn: str, user: str, name: str, topic: str, data: Any, now_us: int) -> bool:
        """``conn`` (of ``user``) joins ``topic`` with ``data``. Returns True when it had joined
        already (then only ``data`` changes)."""
        topics = self._by_conn.setdefault(conn, {})
        again = topic in topics
        topics[topic] = user
        key = (topic, user)
        m = self._members.get(key)
        if m is None:
            m = self._members[key] = _Membership(user, name, since=now_us)
        if m.grace_until is not None:
            m.grace_until = None
            self._in_grace.discard(key)
        m.conns.add(conn)
        m.name = name
        m.data = data
        m.at = now_us
        self._write(topic, m)
        return again

    def leave(self, conn: str, topic: str) -> bool:
        """``conn`` leaves ``topic`` now (no grace). False when it had not joined."""
        topics = self._by_conn.get(conn)
        user = topics.pop(topic, None) if topics else None
        if user is None:
            return False
        if not topics:
            del self._by_conn[conn]
        self._drop(conn, topic, user, grace=None)
        return True

    def closed(self, conn: str, now: float) -> None:
        """``conn`` is gone: its memberships end after the grace period unless renewed."""
        for topic, user in self._by_conn.pop(conn, {}).items():
            self._drop(conn, topic, user, grace=now + self.grace)

    def revoke(self, topic: str, user: str) -> list[str]:
        """End ``user``'s membership of ``topic`` on this edge at once (access revoked).
        Returns the connections that had joined it."""
        m = self._members.pop((topic, user), None)
        if m is None:
            return []
        self._in_grace.discard((topic, user))
        for conn in m.conns:
            topics = self._by_conn.get(conn)
            if topics is not None:
                topics.pop(topic, None)
                if not topics:
                    del self._by_conn[conn]
        self._writes[member_key(self.edge, topic, user)] = None
        return sorted(m.conns)

    def tick(self, now: float) -> None:
        """End the memberships whose grace period is over."""
        if not self._in_grace:
            return
        for key in [k for k in self._in_grace if self._members[k].grace_until <= now]:  # type: ignore[operator]
            self._in_grace.discard(key)
            del self._members[key]
            self._writes[member_key(self.edge, key[0], key[1])] = None

    def _drop(self, conn: str, topic: str, user: str, *, grace: float | None) -> None:
        key = (topic, user)
        m = self._members[key]
        m.conns.discard(conn)
        if m.conns:
            self._write(topic, m)
        elif grace is None:
            del self._members[key]
            self._in_grace.discard(key)
            self._writes[member_key(self.edge, topic, user)] = None
        else:
            m.grace_until = grace
            self._in_grace.add(key)

    def _write(self, topic: str, m: _Membership) -> None:
        m.written = len(m.conns)
        self._writes[member_key(self.edge, topic, m.user)] = Record(m.name, m.written, m.data, m.since, m.at).encode()

    # -- output ----------------------------------------------------------------------------

    def take(self) -> dict[str, bytes | None]:
        """The writes to make since the last call: key -> record bytes, or ``None`` to delete."""
        out, self._writes = self._writes, {}
        return out

    def records(self) -> dict[str, bytes]:
        """Every record this edge holds now (members in their grace period included)."""
        return {
            member_key(self.edge, topic, m.user): Record(m.name, m.written, m.data, m.since, m.at).encode()
            for (topic, _), m in self._members.items()
        }

    def __len__(self) -> int:
        return len(self._members)
