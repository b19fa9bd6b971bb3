"""At most one log line per key per interval, with a count of the lines held back (sans-I/O).

A provider outage or a burst of bad data can make every symbol gap or go stale at once, over and
over; one warning per event would flood the logs exactly when an operator reads them. A caller
asks :meth:`LogLimiter.allow` before logging and logs only when it returns a number: how many
lines for that key were suppressed since the last one written (0 the first time), to put in the
line. Time is an argument (any steady clock, seconds), so tests need no sleeping.

The number of keys is bounded (``max_keys``): past it, the least recently logged key is
forgotten, so a stream of ever-new keys cannot grow memory (a forgotten key logs at once when
it comes back, which errs on the side of telling).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

DEFAULT_INTERVAL_S = 10.0


@dataclass
class _Key:
    logged_at: float
    suppressed: int = 0


class LogLimiter:
    def __init__(self, interval: float = DEFAULT_INTERVAL_S, *, max_keys: int = 10_000) -> None:
        if interval < 0 or max_keys < 1:
            raise ValueError("need interval >= 0 and max_keys >= 1")
        self.interval = interval
        self.max_keys = max_keys
        self._keys: OrderedDict[Hashable, _Key] = OrderedDict()

    def allow(self, key: Hashable, now: float) -> int | None:
        """``None`` when a line for ``key`` was written less than ``interval`` ago (this one is
        counted as suppressed); otherwise the number suppressed since then, and the caller must
        write its line now."""
        entry = self._keys.get(key)
        if entry is not None and now - entry.logged_at < self.interval:
            entry.suppressed += 1
            return None
        suppressed = entry.suppressed if entry is not None else 0
        self._keys[key] = _Key(logged_at=now)
        self._keys.move_to_end(key)
        if len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)
        return suppressed

    def suppressed(self, key: Hashable) -> int:
        """Lines for ``key`` held back since its last written line."""
        entry = self._keys.get(key)
        return entry.suppressed if entry is not None else 0
