"""Every roster this edge keeps, the liveness of every edge, and when deltas are due.

Sans-I/O: the store adapter feeds it KV entries (records and leases) and calls :meth:`flush` on
its timer; the edge reads snapshots from it and fans the deltas out.

Guarantees:

* A topic's deltas go out at most once per ``flush_interval``: the first change after a quiet
  period at once (the next flush call), later ones coalesced until the interval has passed.
* When an edge's lease dies, every roster drops its members in the same flush; when it comes
  (back) alive, its records count again.
"""

from __future__ import annotations

from dataclasses import dataclass

from .records import Record
from .roster import Roster


@dataclass(frozen=True, slots=True)
class Delta:
    topic: str
    version: int
    payload: bytes


class Directory:
    def __init__(self, *, limit: int, flush_interval: float) -> None:
        self.limit = limit
        self.flush_interval = flush_interval
        self.rosters: dict[str, Roster] = {}
        self.alive: set[str] = set()
        self._last_flush: dict[str, float] = {}
        self._dirty: set[str] = set()

    def _is_alive(self, edge: str) -> bool:
        return edge in self.alive

    # -- topics ----------------------------------------------------------------------------

    def open(self, topic: str) -> Roster:
        """The roster of ``topic``, created empty (the caller then feeds it the stored records)."""
        roster = self.rosters.get(topic)
        if roster is None:
            roster = self.rosters[topic] = Roster(topic, limit=self.limit, alive=self._is_alive)
        return roster

    def close(self, topic: str) -> None:
        self.rosters.pop(topic, None)
        self._last_flush.pop(topic, None)
        self._dirty.discard(topic)

    # -- input -----------------------------------------------------------------------------

    def record(self, topic: str, edge: str, user: str, record: Record | None) -> None:
        roster = self.rosters.get(topic)
        if roster is None:
            return
        roster.put(edge, user, record)
        if roster.dirty:
            self._dirty.add(topic)

    def lease(self, edge: str, alive: bool) -> None:
        """``edge``'s lease was written (alive) or expired or was deleted (dead)."""
        if alive == (edge in self.alive):
            return
        if alive:
            self.alive.add(edge)
        else:
            self.alive.discard(edge)
        for topic, roster in self.rosters.items():
            for user in roster.users_on(edge):
                roster.refresh(user)
            if roster.dirty:
                self._dirty.add(topic)

    def purged(self, edge: str) -> None:
        """``edge``'s records were purged from the bucket: forget them here too."""
        for topic, roster in self.rosters.items():
            roster.drop_edge(edge)
            if roster.dirty:
                self._dirty.add(topic)

    def settle(self, topic: str) -> None:
        """Take in every change of ``topic`` without a delta: its stored records were just read
        and nobody has been sent anything yet, so the next snapshot simply includes them."""
        roster = self.rosters.get(topic)
        if roster is not None:
            roster.flush()
            self._dirty.discard(topic)

    # -- output ----------------------------------------------------------------------------

    def flush(self, now: float) -> list[Delta]:
        """Deltas of every topic that changed and whose interval has passed."""
        out: list[Delta] = []
        for topic in list(self._dirty):
            if now - self._last_flush.get(topic, float("-inf")) < self.flush_interval:
                continue
            self._dirty.discard(topic)
            roster = self.rosters.get(topic)
            if roster is None:
                continue
            payload = roster.flush()
            if payload is not None:
                self._last_flush[topic] = now
                out.append(Delta(topic, roster.version, payload))
        return out

    def next_due(self) -> float | None:
        """The earliest time at which :meth:`flush` has something to send, if any."""
        if not self._dirty:
            return None
        return min(self._last_flush.get(t, float("-inf")) + self.flush_interval for t in self._dirty)
