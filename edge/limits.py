"""Rate limits and connection counting, as plain objects with time passed in."""

from __future__ import annotations

from typing import Protocol


class Limiter(Protocol):
    """What rate-limits a user's commands: a :class:`TokenBucket`, or a handle on one."""

    def take(self, now: float, cost: float = 1.0) -> float: ...

    def peek(self, now: float, cost: float = 1.0) -> float: ...


class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst``. Shared by a user's connections on
    one edge, so opening more connections does not buy more commands."""

    __slots__ = ("rate", "burst", "tokens", "updated")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.updated = now

    def take(self, now: float, cost: float = 1.0) -> float:
        """Take ``cost`` tokens: returns 0 on success, else the seconds to wait for them."""
        wait = self.peek(now, cost)
        if wait == 0.0:
            self.tokens -= cost
        return wait

    def peek(self, now: float, cost: float = 1.0) -> float:
        """Like :meth:`take` without taking: 0 when ``cost`` tokens are there now."""
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        self.updated = now
        if self.tokens >= cost:
            return 0.0
        return (cost - self.tokens) / self.rate if self.rate > 0 else float("inf")


class Counter:
    """Counts open connections per key (user, address) against a maximum."""

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self._counts: dict[str, int] = {}

    def acquire(self, key: str) -> bool:
        n = self._counts.get(key, 0)
        if n >= self.maximum:
            return False
        self._counts[key] = n + 1
        return True

    def release(self, key: str) -> None:
        n = self._counts.get(key, 0) - 1
        if n > 0:
            self._counts[key] = n
        else:
            self._counts.pop(key, None)

    def __getitem__(self, key: str) -> int:
        return self._counts.get(key, 0)
