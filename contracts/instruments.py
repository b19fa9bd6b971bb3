"""Reference data for the instruments tickmesh knows, from ``instruments.toml``."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import cache

from ._data import load


@dataclass(frozen=True, slots=True)
class Instrument:
    symbol: str
    market: str
    reference_price: Decimal
    tick_size: Decimal


@cache
def instruments() -> dict[str, Instrument]:
    """Every known instrument by symbol, in file order."""
    raw = load("instruments.toml")["instruments"]
    return {
        symbol: Instrument(symbol, market, Decimal(price), Decimal(tick))
        for symbol, (market, price, tick) in raw.items()
    }


@cache
def markets() -> dict[str, str]:
    """Market name to description, e.g. ``{"equities": "Listed stocks and ETFs", ...}``."""
    return dict(load("instruments.toml")["markets"])


def market_of(symbol: str) -> str | None:
    """The market of a known symbol, or ``None`` for a symbol tickmesh does not list."""
    inst = instruments().get(symbol)
    return inst.market if inst else None
