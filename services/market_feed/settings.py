"""market-feed settings, read once from the environment."""

from __future__ import annotations

from dataclasses import dataclass

from tickmesh.config import ConfigError, setting
from tickmesh.contracts.channels import ChannelError, validate_symbol
from tickmesh.contracts.instruments import instruments

PROVIDERS = ("synthetic",)


@dataclass(frozen=True)
class FeedSettings:
    nats_url: str = setting("NATS_URL", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated")
    provider: str = setting("FEED_PROVIDER", "synthetic", "Provider adapter: " + ", ".join(PROVIDERS))
    symbols: tuple[str, ...] = setting("FEED_SYMBOLS", (), "Comma-separated symbols; empty means every instrument in contracts/instruments.toml")
    rate: float = setting("FEED_RATE", 100.0, "Synthetic provider: ticks per second across all symbols")
    volatility_scale: float = setting("FEED_VOLATILITY_SCALE", 20.0,
                                      "Synthetic provider: multiplier on real-world volatility, so a demo visibly moves")
    seed: int = setting("FEED_SEED", 0, "Synthetic provider: random seed; 0 picks a fresh one")

    def universe(self) -> tuple[str, ...]:
        return self.symbols or tuple(instruments())

    def validate(self) -> None:
        if self.provider not in PROVIDERS:
            raise ConfigError("FEED_PROVIDER", self.provider, "must be one of " + ", ".join(PROVIDERS))
        if not 0 < self.rate <= 100_000:
            raise ConfigError("FEED_RATE", str(self.rate), "must be in (0, 100000] ticks/s")
        if self.volatility_scale < 0:
            raise ConfigError("FEED_VOLATILITY_SCALE", str(self.volatility_scale), "must not be negative")
        known = instruments()
        for sym in self.symbols:
            try:
                validate_symbol(sym)
            except ChannelError as exc:
                raise ConfigError("FEED_SYMBOLS", sym, exc.reason) from None
            if sym not in known:
                raise ConfigError("FEED_SYMBOLS", sym, "not in contracts/instruments.toml")
