"""The provider interface every market-data adapter implements, and the choice among them.

A provider turns one source of prices into :class:`~.normalise.Tick` objects and hands each to
``emit`` as it arrives. ``run`` keeps going (reconnecting as needed) until it is cancelled, which
is how the service stops it; a provider with a natural end (a replay that does not loop) returns.
A provider never filters, orders or rate-limits: that is the pipeline's job, the same for all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Protocol

from .normalise import Tick

if TYPE_CHECKING:
    from .settings import FeedSettings

Emit = Callable[[Tick], Awaitable[None]]


@dataclass
class ProviderStats:
    """Counters an adapter keeps; logged when the service stops, asserted on by tests."""

    attempts: int = 0  # connection attempts
    connected: int = 0  # attempts that opened
    disconnects: int = 0  # connections that ended, for any reason
    messages: int = 0  # frames or records received
    ticks: int = 0  # ticks emitted
    ignored: int = 0  # frames of unknown or unsupported types, and malformed frames
    errors: int = 0  # error messages from the provider
    gaps: int = 0  # jumps in a sequence number or heartbeat counter
    missed: int = 0  # messages the gaps say were lost
    stale_ids: int = 0  # updates older than one already seen (Binance u / t)
    silences: int = 0  # connections dropped because the provider went quiet
    shutdowns: int = 0  # server-announced shutdowns

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class Provider(Protocol):
    name: str
    stats: ProviderStats

    async def run(self, emit: Emit) -> None:
        """Deliver ticks to ``emit`` until cancelled (or, for a finite source, until done)."""


def build(settings: FeedSettings, symbols: tuple[str, ...]) -> Provider:
    """The adapter ``settings.provider`` names, for ``symbols`` (canonical form)."""
    # Imported here so that choosing one adapter never imports another's dependencies.
    if settings.provider == "synthetic":
        from .synthetic import SyntheticMarket, SyntheticProvider

        market = SyntheticMarket(
            symbols, rate=settings.rate, volatility_scale=settings.volatility_scale, seed=settings.seed or None
        )
        return SyntheticProvider(market)
    if settings.provider == "replay":
        from .replay import ReplayProvider

        return ReplayProvider(
            settings.replay_path(),
            speed=settings.replay_speed,
            loop=settings.replay_loop,
            symbols=settings.symbols or None,
        )
    if settings.provider == "coinbase":
        from .coinbase import CoinbaseProvider

        return CoinbaseProvider(
            symbols,
            url=settings.coinbase_url,
            heartbeat_timeout=settings.coinbase_heartbeat_timeout,
            reconnect_max=settings.reconnect_max,
        )
    if settings.provider == "binance":
        from .binance import BinanceProvider

        return BinanceProvider(
            symbols,
            url=settings.binance_url,
            idle_timeout=settings.binance_idle_timeout,
            reconnect_max=settings.reconnect_max,
        )
    raise ValueError(f"unknown provider {settings.provider!r}")
