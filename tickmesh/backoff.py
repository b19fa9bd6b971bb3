"""When to try again: jittered exponential backoff under an optional rate floor.

The one backoff of tickmesh: provider adapters, NATS (re)connection, ``tickmesh up``'s restarts
and the publishing SDK's retries all use it, so they spread out the same way.

Two rules combine, and the later of the two wins:

* **Backoff** after failures: "full jitter", a delay drawn uniformly from
  ``[0, min(cap, base * 2 ** (failures - 1))]``, so that many feeds restarting together spread
  out instead of hammering the provider in step. A connection that delivered data resets it.
* **Rate floor**: never two connection attempts closer than ``min_interval`` seconds, whatever
  happened, so an adapter cannot exceed its provider's connection-rate limit even when the
  server closes every connection straight away (Binance: 300 attempts per 5 minutes per IP).
  Zero (the default) turns it off.

Sans-I/O: the caller passes the time and sleeps for the delay it is given.
"""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    def __init__(
        self,
        *,
        base: float = 0.5,
        cap: float = 30.0,
        min_interval: float = 0.0,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if base <= 0 or cap < base or min_interval < 0:
            raise ValueError("need 0 < base <= cap and min_interval >= 0")
        self.base = base
        self.cap = cap
        self.min_interval = min_interval
        self.rng = rng
        self.failures = 0
        self._last_attempt: float | None = None

    def ceiling(self) -> float:
        """Upper bound of the jittered delay for the current failure count (0 when healthy)."""
        if self.failures == 0:
            return 0.0
        return min(self.cap, self.base * 2 ** min(self.failures - 1, 32))

    def delay(self, now: float) -> float:
        """Seconds to wait before the next attempt may start."""
        jittered = self.rng() * self.ceiling()
        floor = 0.0
        if self._last_attempt is not None:
            floor = self._last_attempt + self.min_interval - now
        return max(jittered, floor, 0.0)

    def attempt(self, now: float) -> None:
        """Record that an attempt starts at ``now`` (the rate floor counts from here)."""
        self._last_attempt = now

    def failed(self) -> None:
        self.failures += 1

    def succeeded(self) -> None:
        self.failures = 0

    def next_delay(self, now: float) -> float:
        """Record a failed attempt at ``now`` and return the seconds to wait before the next one
        (the usual call in a retry loop)."""
        self.failed()
        delay = self.delay(now)
        self.attempt(now + delay)
        return delay
