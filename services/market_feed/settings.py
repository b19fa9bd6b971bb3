"""market-feed settings, read once from the environment (``tickmesh settings market-feed``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from tickmesh.config import ConfigError, setting
from tickmesh.contracts.channels import ChannelError, validate_symbol
from tickmesh.contracts.instruments import instruments

from .binance import exchange_symbol

PROVIDERS = ("synthetic", "replay", "coinbase", "binance")
SAMPLE_REPLAY = "ticks.ndjson"

_PAIR = re.compile(r"[A-Z0-9]+-[A-Z0-9]+")


@dataclass(frozen=True)
class FeedSettings:
    nats_url: str = setting("NATS_URL", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated")
    provider: str = setting("FEED_PROVIDER", "synthetic", "Provider adapter: " + ", ".join(PROVIDERS))
    symbols: tuple[str, ...] = setting(
        "FEED_SYMBOLS",
        (),
        "Comma-separated symbols; empty means every instrument in contracts/instruments.toml the provider can serve",
    )
    rate: float = setting("FEED_RATE", 100.0, "Synthetic provider: ticks per second across all symbols")
    volatility_scale: float = setting(
        "FEED_VOLATILITY_SCALE",
        20.0,
        "Synthetic provider: multiplier on real-world volatility, so a demo visibly moves",
    )
    seed: int = setting("FEED_SEED", 0, "Synthetic provider: random seed; 0 picks a fresh one")
    replay_file: str = setting(
        "FEED_REPLAY_FILE",
        "",
        "Replay provider: NDJSON or .csv file of ticks; empty plays "
        "the bundled sample (services/market_feed/samples/" + SAMPLE_REPLAY + ")",
    )
    replay_speed: float = setting(
        "FEED_REPLAY_SPEED", 1.0, "Replay provider: 1 is real time, 10 ten times faster, 0 as fast as possible"
    )
    replay_loop: bool = setting("FEED_REPLAY_LOOP", True, "Replay provider: start again at the end of the file")
    coinbase_url: str = setting(
        "FEED_COINBASE_URL", "wss://advanced-trade-ws.coinbase.com", "Coinbase provider: Advanced Trade WebSocket URL"
    )
    coinbase_heartbeat_timeout: float = setting(
        "FEED_COINBASE_HEARTBEAT_TIMEOUT_S", 3.0, "Coinbase provider: seconds without a heartbeat before reconnecting"
    )
    binance_url: str = setting(
        "FEED_BINANCE_URL",
        "wss://stream.binance.com:9443",
        "Binance provider: base URL (binance.com, stream.binance.us:9443, data-stream.binance.vision)",
    )
    binance_idle_timeout: float = setting(
        "FEED_BINANCE_IDLE_TIMEOUT_S", 60.0, "Binance provider: seconds without any frame before reconnecting"
    )
    reconnect_max: float = setting(
        "FEED_RECONNECT_MAX_S", 30.0, "Real providers: longest backoff between reconnection attempts, seconds"
    )
    stale_after: float = setting(
        "FEED_STALE_AFTER_S", 30.0, "Seconds without a tick before a symbol is re-published as stale; 0 never"
    )
    max_hz_per_symbol: float = setting(
        "FEED_MAX_HZ_PER_SYMBOL", 0.0, "Most ticks per second published per symbol (latest wins); 0 no limit"
    )

    def universe(self) -> tuple[str, ...]:
        """The symbols to serve: ``FEED_SYMBOLS``, else every listed instrument this provider can
        serve (crypto ``BASE-QUOTE`` pairs for the exchanges; the file decides for replay)."""
        if self.symbols:
            return self.symbols
        known = instruments()
        if self.provider == "coinbase":
            return tuple(
                s for s, i in known.items() if i.market == "crypto" and _PAIR.fullmatch(s) and not s.endswith("-USDT")
            )
        if self.provider == "binance":
            return tuple(
                s for s, i in known.items() if i.market == "crypto" and _binance_lists(s) and not s.endswith("-USD")
            )
        return tuple(known)

    def replay_path(self) -> Path:
        if self.replay_file:
            return Path(self.replay_file)
        return Path(str(resources.files(__package__).joinpath("samples", SAMPLE_REPLAY)))

    def validate(self) -> None:
        if self.provider not in PROVIDERS:
            raise ConfigError("FEED_PROVIDER", self.provider, "must be one of " + ", ".join(PROVIDERS))
        if not 0 < self.rate <= 100_000:
            raise ConfigError("FEED_RATE", str(self.rate), "must be in (0, 100000] ticks/s")
        if self.volatility_scale < 0:
            raise ConfigError("FEED_VOLATILITY_SCALE", str(self.volatility_scale), "must not be negative")
        self._validate_symbols()
        self._validate_timing()
        for env, url in (("FEED_COINBASE_URL", self.coinbase_url), ("FEED_BINANCE_URL", self.binance_url)):
            if not url.startswith(("ws://", "wss://")):
                raise ConfigError(env, url, "must be a ws:// or wss:// URL")
        if self.provider == "replay" and not self.replay_path().is_file():
            raise ConfigError("FEED_REPLAY_FILE", self.replay_file, "no such file")

    def _validate_symbols(self) -> None:
        known = instruments()
        for sym in self.symbols:
            try:
                validate_symbol(sym)
            except ChannelError as exc:
                raise ConfigError("FEED_SYMBOLS", sym, exc.reason) from None
            if sym not in known:
                raise ConfigError("FEED_SYMBOLS", sym, "not in contracts/instruments.toml")
            if self.provider == "coinbase" and not _PAIR.fullmatch(sym):
                raise ConfigError("FEED_SYMBOLS", sym, "coinbase serves BASE-QUOTE products such as BTC-USD")
            if self.provider == "binance":
                try:
                    exchange_symbol(sym)
                except ValueError as exc:
                    raise ConfigError("FEED_SYMBOLS", sym, str(exc)) from None
        if self.provider in ("coinbase", "binance") and not self.universe():
            raise ConfigError("FEED_SYMBOLS", "", f"no instrument that {self.provider} can serve")

    def _validate_timing(self) -> None:
        checks = (
            ("FEED_REPLAY_SPEED", self.replay_speed, 0.0, 1_000_000.0),
            ("FEED_COINBASE_HEARTBEAT_TIMEOUT_S", self.coinbase_heartbeat_timeout, 0.1, 600.0),
            ("FEED_BINANCE_IDLE_TIMEOUT_S", self.binance_idle_timeout, 0.1, 3600.0),
            ("FEED_RECONNECT_MAX_S", self.reconnect_max, 1.0, 3600.0),
            ("FEED_STALE_AFTER_S", self.stale_after, 0.0, 86_400.0),
            ("FEED_MAX_HZ_PER_SYMBOL", self.max_hz_per_symbol, 0.0, 10_000.0),
        )
        for env, value, lo, hi in checks:
            if not lo <= value <= hi:
                raise ConfigError(env, str(value), f"must be between {lo:g} and {hi:g}")
        if self.stale_after and self.max_hz_per_symbol and self.stale_after * self.max_hz_per_symbol <= 1:
            raise ConfigError(
                "FEED_STALE_AFTER_S", str(self.stale_after), "must be longer than 1 / FEED_MAX_HZ_PER_SYMBOL (or 0)"
            )


def _binance_lists(symbol: str) -> bool:
    try:
        exchange_symbol(symbol)
    except ValueError:
        return False
    return True
