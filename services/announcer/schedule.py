"""Announcements: completing a request and holding scheduled ones until their start. Sans-I/O.

Guarantees: every announcement that goes out carries ``ends_at`` (``ANNOUNCER_DEFAULT_TTL_S``
after its start when the request gave none), so the edge and clients can drop expired ones from
the replayed history; one whose ``ends_at`` has passed is never sent, whether it is refused on
arrival or expires while it waits for its start.
"""

from __future__ import annotations

import heapq
from typing import Any

from tickmesh.contracts.codes import ErrorCode


class AnnouncementError(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = int(code)
        self.reason = reason


def prepare(data: dict[str, Any], *, ann_id: str, now: int, default_ttl_us: int) -> dict[str, Any]:
    """The stored announcement for ``announcement.publish`` data (schema-valid), or raise."""
    starts = max(data.get("starts_at") or now, now)
    ends = data.get("ends_at") or starts + default_ttl_us
    if ends <= now:
        raise AnnouncementError(ErrorCode.INVALID_FIELD, "ends_at is in the past: nothing to announce")
    if ends <= starts:
        raise AnnouncementError(ErrorCode.INVALID_FIELD, "ends_at must be after starts_at")
    return {"id": ann_id, "severity": data["severity"], "text": data["text"], "starts_at": starts, "ends_at": ends}


def due_now(ann: dict[str, Any], now: int) -> bool:
    return ann["starts_at"] <= now


class Schedule:
    """Announcements waiting for their start, earliest first."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, str, dict[str, Any]]] = []
        self._ids: set[str] = set()

    def add(self, ann: dict[str, Any]) -> bool:
        """Hold ``ann``; False when one with its id is already held (a retried command)."""
        if ann["id"] in self._ids:
            return False
        self._ids.add(ann["id"])
        heapq.heappush(self._heap, (ann["starts_at"], ann["id"], ann))
        return True

    def pop_due(self, now: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """``(to_publish, expired)``: what starts by ``now``, split by whether it already ended."""
        due, expired = [], []
        while self._heap and self._heap[0][0] <= now:
            _, ann_id, ann = heapq.heappop(self._heap)
            self._ids.discard(ann_id)
            (expired if ann["ends_at"] <= now else due).append(ann)
        return due, expired

    def next_start(self) -> int | None:
        return self._heap[0][0] if self._heap else None

    def __len__(self) -> int:
        return len(self._heap)
