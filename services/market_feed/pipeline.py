"""The transformation pipeline between a provider and NATS: a synchronous core with no I/O.

Ticks go in with :meth:`Pipeline.offer`; what must be published comes back as a list. Time is
an argument (``now``, seconds on any steady clock the caller keeps using), so the core never
sleeps and tests never wait. The caller must also call :meth:`Pipeline.poll` no later than
:meth:`Pipeline.next_deadline`: that is when held-back ticks become due and silent symbols turn
stale.

Guarantees, per symbol:

* **Order**: a tick older than one already accepted (by provider time ``ts``) is dropped, and so
  is an exact repeat of a tick already accepted at the newest ``ts`` (providers resend on
  reconnect and snapshot after resubscribing). Ticks with the same ``ts`` and different content
  are distinct trades and all pass.
* **Staleness** (``stale_after`` > 0): when no tick has been accepted for ``stale_after``
  seconds, the last tick is published once more with ``stale: true``; the next accepted tick
  goes out without the flag, which clears it.
* **Rate** (``max_hz`` > 0): at most one tick per ``1 / max_hz`` seconds goes out. A tick that
  arrives too soon is held (a newer one replaces it: latest value wins) and goes out when the
  interval has passed, so the last value of a burst is never lost (trailing edge).
* **Universe**: when ``symbols`` is given, ticks for any other symbol are dropped (the edge
  would refuse their channels anyway).

Every tick dropped is counted in :class:`PipelineStats` and reported to ``on_drop`` with a reason
from ``tickmesh.metrics.DROP_REASONS`` (``"stale"`` for a repeat or an older tick, ``"invalid"``
for a symbol outside the universe); the service passes ``tickmesh.metrics.dropped``. The "is
stale" log line is written at most once per symbol per ``log_interval`` seconds, with the number
held back since (:class:`~.loglimit.LogLimiter`).

``stale_after`` must be longer than ``1 / max_hz`` when both are set, so a held-back tick always
goes out before its symbol can turn stale. Deadlines are kept in a heap (held ticks) and in
order of last hearing (staleness), so :meth:`Pipeline.next_deadline` is cheap enough to ask
after every tick, whatever the number of symbols.
"""

from __future__ import annotations

import heapq
import logging
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from .loglimit import DEFAULT_INTERVAL_S, LogLimiter
from .normalise import Tick

log = logging.getLogger(__name__)


@dataclass
class PipelineStats:
    accepted: int = 0
    published: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    unknown_symbol: int = 0
    conflated: int = 0
    stale_marked: int = 0


@dataclass
class _SymbolState:
    last: Tick
    heard_at: float
    seen_at_ts: set[tuple] = field(default_factory=set)
    stale: bool = False
    sent_at: float | None = None
    pending: Tick | None = None


class Pipeline:
    def __init__(
        self,
        *,
        symbols: Collection[str] | None = None,
        stale_after: float = 0.0,
        max_hz: float = 0.0,
        on_drop: Callable[[str], None] | None = None,
        log_interval: float = DEFAULT_INTERVAL_S,
    ) -> None:
        if stale_after < 0 or max_hz < 0:
            raise ValueError("stale_after and max_hz must not be negative")
        self.symbols = frozenset(symbols) if symbols is not None else None
        self.stale_after = stale_after
        self.min_interval = 1.0 / max_hz if max_hz > 0 else 0.0
        if stale_after and self.min_interval and stale_after <= self.min_interval:
            raise ValueError("stale_after must be longer than 1 / max_hz")
        self.stats = PipelineStats()
        self._on_drop = on_drop or _ignore
        self._stale_log = LogLimiter(log_interval)
        self._state: dict[str, _SymbolState] = {}
        self._held: list[tuple[float, str]] = []  # (due, symbol); entries may be outdated
        self._fresh: OrderedDict[str, None] = OrderedDict()  # non-stale symbols, least recently heard first

    def offer(self, tick: Tick, *, now: float) -> list[Tick]:
        """Accept or drop ``tick``; returns what must be published now (zero or one tick)."""
        if self.symbols is not None and tick.symbol not in self.symbols:
            self.stats.unknown_symbol += 1
            self._on_drop("invalid")
            return []
        st = self._state.get(tick.symbol)
        if st is None:
            st = self._state[tick.symbol] = _SymbolState(last=tick, heard_at=now)
        else:
            if not self._is_new(st, tick):
                return []
            if tick.ts > st.last.ts:
                st.seen_at_ts.clear()
            st.last, st.heard_at = tick, now
        st.seen_at_ts.add(tick.fingerprint())
        st.stale = False
        if self.stale_after:
            self._fresh[tick.symbol] = None
            self._fresh.move_to_end(tick.symbol)
        self.stats.accepted += 1
        return self._out(st, tick, now)

    def poll(self, *, now: float) -> list[Tick]:
        """Ticks that became due by ``now``: held-back trailing ticks, then stale marks."""
        out: list[Tick] = []
        while self._held and self._held[0][0] <= now:
            _, symbol = heapq.heappop(self._held)
            st = self._state[symbol]
            if st.pending is not None and now >= self._due(st):  # else: an outdated entry
                tick, st.pending = st.pending, None
                out.append(self._send(st, tick, now))
        while self._fresh:
            symbol = next(iter(self._fresh))
            st = self._state[symbol]
            if now - st.heard_at < self.stale_after:
                break
            del self._fresh[symbol]
            out.append(self._mark_stale(st, now))
        return out

    def next_deadline(self) -> float | None:
        """The earliest ``now`` at which :meth:`poll` has something to do, or ``None``. It may be
        early (an outdated entry), never late."""
        deadlines = []
        if self._held:
            deadlines.append(self._held[0][0])
        if self._fresh:
            deadlines.append(self._state[next(iter(self._fresh))].heard_at + self.stale_after)
        return min(deadlines) if deadlines else None

    def is_stale(self, symbol: str) -> bool:
        st = self._state.get(symbol)
        return bool(st and st.stale)

    # --- internals ---

    def _is_new(self, st: _SymbolState, tick: Tick) -> bool:
        newest = st.last.ts
        if tick.ts < newest:
            self.stats.out_of_order += 1
            self._on_drop("stale")
            return False
        if tick.ts == newest and tick.fingerprint() in st.seen_at_ts:
            self.stats.duplicates += 1
            self._on_drop("stale")
            return False
        return True

    def _due(self, st: _SymbolState) -> float:
        return (st.sent_at or 0.0) + self.min_interval

    def _out(self, st: _SymbolState, tick: Tick, now: float) -> list[Tick]:
        if not self.min_interval or st.sent_at is None or now >= self._due(st):
            if st.pending is not None:
                self.stats.conflated += 1
                st.pending = None
            return [self._send(st, tick, now)]
        if st.pending is not None:
            self.stats.conflated += 1
        else:
            heapq.heappush(self._held, (self._due(st), tick.symbol))
        st.pending = tick
        return []

    def _mark_stale(self, st: _SymbolState, now: float) -> Tick:
        st.stale = True
        self.stats.stale_marked += 1
        suppressed = self._stale_log.allow(st.last.symbol, now)
        if suppressed is not None:
            log.info(
                "%s is stale: nothing from the provider for %.1fs (%d such lines held back)",
                st.last.symbol,
                now - st.heard_at,
                suppressed,
                extra={"event": "feed.stale", "symbol": st.last.symbol, "suppressed": suppressed},
            )
        return self._send(st, st.last.as_stale(), now)

    def _send(self, st: _SymbolState, tick: Tick, now: float) -> Tick:
        st.sent_at = now
        self.stats.published += 1
        return tick


def _ignore(reason: str) -> None:
    return None
