"""The synthetic provider: a plausible market for demos and tests, with no network.

Each symbol follows a geometric random walk whose volatility depends on its market (equities,
crypto, FX), scaled up for demos by ``volatility_scale``. Quotes have a spread of one to a few
price increments, trades print at the bid, ask or inside, and sizes follow the market's habits
(round lots for stocks, fractions for crypto, thousands for FX). Popular symbols tick more often:
arrivals are a Poisson process whose rate is split across symbols by weight.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from tickmesh import metrics
from tickmesh.contracts.instruments import Instrument, instruments

from .normalise import from_record
from .provider import Emit, ProviderStats

# Annualised volatility per market, a rough real-world order of magnitude.
_VOL = {"equities": 0.28, "crypto": 0.65, "fx": 0.08}
_SECONDS_PER_YEAR = 365 * 24 * 3600


@dataclass
class _Walk:
    inst: Instrument
    mid: float
    sigma: float  # per sqrt(second)
    weight: float
    last_time: float


class SyntheticMarket:
    """Produces contract-shaped tick dicts; :meth:`next_tick` is pure computation (no I/O)."""

    name = "synthetic"

    def __init__(
        self,
        symbols: tuple[str, ...],
        *,
        rate: float,
        volatility_scale: float = 20.0,
        seed: int | None = None,
        now: float | None = None,
    ) -> None:
        self.rng = random.Random(seed or None)
        self.rate = rate
        start = time.time() if now is None else now
        known = instruments()
        self._walks: list[_Walk] = []
        for i, sym in enumerate(symbols):
            inst = known[sym]
            vol = _VOL.get(inst.market, 0.3) * volatility_scale
            # Zipf-like popularity: the first symbols listed (the big names) tick most.
            weight = 1.0 / (1 + i) ** 0.6
            self._walks.append(
                _Walk(inst, float(inst.reference_price), vol / math.sqrt(_SECONDS_PER_YEAR), weight, start)
            )
        self._cum: list[float] = []
        total = 0.0
        for w in self._walks:
            total += w.weight
            self._cum.append(total)
        self._total_weight = total

    def interval(self) -> float:
        """Seconds until the next tick (exponentially distributed: Poisson arrivals)."""
        return self.rng.expovariate(self.rate)

    def _pick(self) -> _Walk:
        x = self.rng.random() * self._total_weight
        lo, hi = 0, len(self._cum) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if self._cum[mid] < x:
                lo = mid + 1
            else:
                hi = mid
        return self._walks[lo]

    def next_tick(self, now: float) -> dict[str, Any]:
        """Advance one symbol's walk to ``now`` (Unix seconds) and return its tick."""
        w = self._pick()
        rng = self.rng
        dt = max(now - w.last_time, 1e-3)
        w.last_time = now
        w.mid *= math.exp(w.sigma * math.sqrt(dt) * rng.gauss(0.0, 1.0) - 0.5 * w.sigma * w.sigma * dt)
        ref = float(w.inst.reference_price)
        # Keep the demo market within a sane band around its reference price.
        w.mid = min(max(w.mid, ref * 0.5), ref * 2.0)
        tick = float(w.inst.tick_size)
        market = w.inst.market
        if market == "crypto":
            half_spread_ticks = max(1, round(w.mid * 0.00005 / tick))
        elif market == "fx":
            half_spread_ticks = rng.choice((1, 1, 2))
        else:
            half_spread_ticks = rng.choice((1, 1, 1, 2, 3))
        mid_ticks = round(w.mid / tick)
        bid_t = mid_ticks - half_spread_ticks
        ask_t = mid_ticks + half_spread_ticks
        bid_t = max(bid_t, 1)
        side = rng.random()
        last_t = bid_t if side < 0.45 else ask_t if side < 0.9 else rng.randint(bid_t, ask_t)
        q = w.inst.tick_size
        ts_us = int(now * 1_000_000)
        return {
            "symbol": w.inst.symbol,
            "last": _fmt(last_t, q),
            "bid": _fmt(bid_t, q),
            "ask": _fmt(ask_t, q),
            "size": self._size(market),
            "ts": ts_us,
            "ingest_ts": ts_us,
            "provider": self.name,
        }

    def _size(self, market: str) -> str:
        rng = self.rng
        if market == "crypto":
            return str(
                Decimal(rng.lognormvariate(-3.0, 1.5))
                .quantize(Decimal("0.00001"), ROUND_HALF_EVEN)
                .max(Decimal("0.00001"))
            )
        if market == "fx":
            return str(1000 * rng.choice((1, 5, 10, 25, 50, 100, 250, 1000)))
        if rng.random() < 0.7:
            return str(100 * rng.choice((1, 1, 1, 2, 3, 5, 10)))
        return str(rng.randint(1, 99))


def _fmt(ticks: int, tick_size: Decimal) -> str:
    return format(Decimal(ticks) * tick_size, "f")


class SyntheticProvider:
    """The synthetic market behind the provider interface: ticks at the market's Poisson rate.

    Ticks whose arrival time has passed are emitted in a burst, so the long-run rate holds even
    when the event loop oversleeps.
    """

    name = "synthetic"

    def __init__(self, market: SyntheticMarket, *, clock: Callable[[], float] = time.time) -> None:
        self.market = market
        self.clock = clock
        self.stats = ProviderStats()

    async def run(self, emit: Emit) -> None:
        """Tick forever; the provider counts as connected (``tickmesh_provider_connected``) while
        this runs, and each tick is a provider message."""
        metrics.provider_status(self.name, True)
        try:
            await self._run(emit)
        finally:
            metrics.provider_status(self.name, False)

    async def _run(self, emit: Emit) -> None:
        next_at = self.clock()
        while True:
            now = self.clock()
            while next_at <= now:
                record = self.market.next_tick(now)
                self.stats.messages += 1
                metrics.provider_message(self.name)
                tick = from_record(record, provider=self.name, ingest_ts=record["ingest_ts"])
                if tick is not None:
                    self.stats.ticks += 1
                    await emit(tick)
                next_at += self.market.interval()
            await asyncio.sleep(max(next_at - self.clock(), 0))
