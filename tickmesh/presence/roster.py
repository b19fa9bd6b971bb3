"""One topic's member list as this edge sees it: every edge's records in, versioned deltas out.

Sans-I/O: records, edge liveness and the time are passed in; snapshots and deltas come out as
encoded ``presence`` payloads (``messages.toml``), built once for every subscriber on this edge.

Guarantees:

* A member is a user: their records on every live edge are merged (connections summed, earliest
  ``since``, the most recent ``data``). Records of edges whose lease is not alive are kept but do
  not count, so an edge's members appear and disappear with its lease.
* At most ``limit`` members are listed: the first by ``(since, user)``. Deltas only concern
  listed members; ``count`` and ``conns`` count everyone.
* Deltas are coalesced: :meth:`flush` compares what subscribers were last sent with the current
  list, so any number of changes between two flushes make one delta, changes that cancel make
  none, and the cost of a flush is O(limit), whatever the number of members.
* A delta's version is the previous one plus one; :meth:`snapshot` is the state as of the last
  delta sent, so a subscriber that starts from it and applies every later delta is exact.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable
from typing import Any

import orjson

from .records import Record

Member = dict[str, Any]


class Roster:
    __slots__ = (
        "topic",
        "limit",
        "_records",
        "_members",
        "_order",
        "count",
        "conns",
        "version",
        "_sent",
        "_sent_count",
        "_sent_conns",
        "dirty",
        "_snapshot",
        "_alive",
    )

    def __init__(self, topic: str, *, limit: int, alive: Callable[[str], bool]) -> None:
        self.topic = topic
        self.limit = limit
        self._alive = alive
        self._records: dict[str, dict[str, Record]] = {}  # user -> edge -> record
        self._members: dict[str, Member] = {}  # user -> merged member (live edges only)
        self._order: list[tuple[int, str]] = []  # (since, user) of every member, sorted
        self.count = 0
        self.conns = 0
        self.version = 0
        self._sent: dict[str, Member] = {}  # listed members as subscribers have them
        self._sent_count = 0
        self._sent_conns = 0
        self.dirty = False
        self._snapshot: bytes | None = None

    # -- input -----------------------------------------------------------------------------

    def put(self, edge: str, user: str, record: Record | None) -> None:
        """An edge's record of ``user`` was written (``None``: deleted)."""
        by_edge = self._records.get(user)
        if record is None:
            if by_edge is None or by_edge.pop(edge, None) is None:
                return
            if not by_edge:
                del self._records[user]
        else:
            if by_edge is None:
                by_edge = self._records[user] = {}
            by_edge[edge] = record
        if self._alive(edge):
            self.refresh(user)

    def users_on(self, edge: str) -> list[str]:
        """Users with a record from ``edge`` (to refresh when its liveness changes)."""
        return [user for user, by_edge in self._records.items() if edge in by_edge]

    def drop_edge(self, edge: str) -> None:
        """Forget every record of ``edge`` (its keys were purged)."""
        for user in self.users_on(edge):
            self.put(edge, user, None)

    def refresh(self, user: str) -> None:
        """Recompute ``user``'s merged member from their records on live edges."""
        merged = self._merge(user, self._records.get(user))
        old = self._members.get(user)
        if merged == old:
            return
        if old is not None:
            self.count -= 1
            self.conns -= old["conns"]
            del self._order[bisect_left(self._order, (old["since"], user))]
        if merged is None:
            del self._members[user]
        else:
            self._members[user] = merged
            self.count += 1
            self.conns += merged["conns"]
            insort(self._order, (merged["since"], user))
        self.dirty = True

    def _merge(self, user: str, by_edge: dict[str, Record] | None) -> Member | None:
        if not by_edge:
            return None
        conns = 0
        since = None
        latest: Record | None = None
        for edge, rec in by_edge.items():
            if not self._alive(edge):
                continue
            conns += rec.conns
            since = rec.since if since is None else min(since, rec.since)
            if latest is None or rec.at > latest.at:
                latest = rec
        if latest is None:
            return None
        member: Member = {"user": user, "name": latest.name, "conns": conns, "since": since}
        if latest.data is not None:
            member["data"] = latest.data
        return member

    # -- output ----------------------------------------------------------------------------

    def listed(self) -> list[str]:
        return [user for _, user in self._order[: self.limit]]

    def member(self, user: str) -> Member | None:
        return self._members.get(user)

    def flush(self) -> bytes | None:
        """The delta since the last flush, encoded, or ``None`` when subscribers are up to date.

        Advances the version by one when a delta is returned.
        """
        if not self.dirty:
            return None
        self.dirty = False
        now_listed = self.listed()
        sent = self._sent
        current = {user: self._members[user] for user in now_listed}
        joins = [current[u] for u in now_listed if u not in sent]
        updates = [current[u] for u in now_listed if u in sent and sent[u] != current[u]]
        leaves = [u for u in sent if u not in current]
        if not (joins or updates or leaves) and self.count == self._sent_count and self.conns == self._sent_conns:
            return None
        self._sent = current
        self._sent_count, self._sent_conns = self.count, self.conns
        self.version += 1
        self._snapshot = None
        body: dict[str, Any] = {"type": "delta", "count": self.count, "conns": self.conns, "limit": self.limit}
        if joins:
            body["joins"] = joins
        if updates:
            body["updates"] = updates
        if leaves:
            body["leaves"] = leaves
        return orjson.dumps(body)

    def snapshot(self) -> tuple[int, bytes]:
        """``(version, payload)``: the listed members as of the last delta (cached per version)."""
        if self._snapshot is None:
            members = sorted(self._sent.values(), key=lambda m: (m["since"], m["user"]))
            self._snapshot = orjson.dumps(
                {
                    "type": "snapshot",
                    "count": self._sent_count,
                    "conns": self._sent_conns,
                    "limit": self.limit,
                    "members": members,
                }
            )
        return self.version, self._snapshot

    @property
    def empty(self) -> bool:
        """No records at all (from any edge): the roster can be dropped."""
        return not self._records
