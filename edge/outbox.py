"""Each connection's bounded send queue.

A slow client can only hurt itself: frames wait here, not in a shared queue. State frames
(prices, portfolio) conflate: a newer frame for the same channel replaces the pending one in
place, so a slow reader gets the latest value, never a stale backlog. Event and control frames
are kept in order up to ``max_frames``; past that the outbox overflows and the connection must be
closed (the client resumes from its last position), because dropping an event silently is not
allowed.
"""

from __future__ import annotations

from typing import Callable


class Outbox:
    __slots__ = ("_frames", "_state_slots", "_bytes", "max_frames", "max_bytes", "overflowed",
                 "conflated", "_on_ready", "_on_overflow")

    def __init__(self, *, max_frames: int = 1024, max_bytes: int = 4 * 1024 * 1024,
                 on_ready: Callable[[], None] | None = None,
                 on_overflow: Callable[[], None] | None = None) -> None:
        self._frames: list[bytes] = []
        self._state_slots: dict[str, int] = {}
        self._bytes = 0
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.overflowed = False
        self.conflated = 0
        self._on_ready = on_ready
        self._on_overflow = on_overflow

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def pending_bytes(self) -> int:
        return self._bytes

    def set_callbacks(self, *, on_ready: Callable[[], None] | None,
                      on_overflow: Callable[[], None] | None) -> None:
        """``on_ready`` runs when the outbox goes from empty to non-empty (one wake-up per batch);
        ``on_overflow`` runs once, when a frame first fails to fit."""
        self._on_ready = on_ready
        self._on_overflow = on_overflow

    def _overflow(self) -> bool:
        if not self.overflowed:
            self.overflowed = True
            if self._on_overflow is not None:
                self._on_overflow()
        return False

    def push(self, frame: bytes) -> bool:
        """Queue an event or control frame. Returns ``False`` (and marks the outbox overflowed)
        when the bounds are exceeded; the frame is not queued then."""
        if self.overflowed:
            return False
        if len(self._frames) >= self.max_frames or self._bytes + len(frame) > self.max_bytes:
            return self._overflow()
        self._frames.append(frame)
        self._bytes += len(frame)
        if len(self._frames) == 1 and self._on_ready is not None:
            self._on_ready()
        return True

    def push_state(self, key: str, frame: bytes) -> bool:
        """Queue a state frame for channel ``key``, replacing a pending one for the same key."""
        slot = self._state_slots.get(key)
        if slot is not None:
            old = self._frames[slot]
            self._frames[slot] = frame
            self._bytes += len(frame) - len(old)
            self.conflated += 1
            return True
        if self.overflowed:
            return False
        if self._bytes + len(frame) > self.max_bytes:
            return self._overflow()
        self._state_slots[key] = len(self._frames)
        self._frames.append(frame)
        self._bytes += len(frame)
        if len(self._frames) == 1 and self._on_ready is not None:
            self._on_ready()
        return True

    def drain(self) -> list[bytes]:
        """Take every pending frame, oldest first."""
        frames = self._frames
        self._frames = []
        self._state_slots.clear()
        self._bytes = 0
        return frames
