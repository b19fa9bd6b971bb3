"""Per-key rate limit with a trailing edge: the sans-I/O scheduler of portfolio publishes.

:meth:`Throttle.mark` says "this key changed at ``now``"; :meth:`Throttle.pop_due` hands back
the keys whose publish is due. A key is published at most once per ``1 / max_hz`` seconds, and
a change marked during the quiet period is never lost: it becomes due when the period ends (the
trailing edge). Marking an already pending key is O(1); scheduling is a heap, so 10,000 users
cost O(log n) per publish, not a scan.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, KeysView


class Throttle:
    def __init__(self, *, max_hz: float) -> None:
        if max_hz <= 0:
            raise ValueError("max_hz must be positive")
        self.interval = 1.0 / max_hz
        self._last: dict[str, float] = {}
        self._pending: set[str] = set()
        self._heap: list[tuple[float, str]] = []

    def mark(self, key: str, now: float) -> None:
        if key in self._pending:
            return
        self._pending.add(key)
        last = self._last.get(key)
        due = now if last is None else max(now, last + self.interval)
        heapq.heappush(self._heap, (due, key))

    def mark_many(self, keys: Iterable[str], now: float) -> None:
        """:meth:`mark` for each of ``keys``; the ones already pending cost a C-level set
        difference, not a Python step each (a tick marks thousands of holders)."""
        new = (
            set(keys).difference(self._pending)
            if not isinstance(keys, (set, frozenset, KeysView))
            else keys - self._pending
        )
        if not new:
            return
        self._pending |= new
        last, heap, interval = self._last, self._heap, self.interval
        for key in new:
            prev = last.get(key)
            heapq.heappush(heap, (now if prev is None else max(now, prev + interval), key))

    def pop_due(self, now: float) -> list[str]:
        """Keys due at ``now``, each recorded as published at ``now``."""
        out = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, key = heapq.heappop(heap)
            self._pending.discard(key)
            self._last[key] = now
            out.append(key)
        return out

    def next_due(self) -> float | None:
        """When the earliest pending key becomes due, or None when nothing is pending."""
        return self._heap[0][0] if self._heap else None

    def forget(self, key: str) -> None:
        """Drop ``key``'s history (a removed user); a pending entry still fires once."""
        self._last.pop(key, None)
