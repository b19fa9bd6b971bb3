"""watchlists settings, read once from the environment."""

from __future__ import annotations

from dataclasses import dataclass

from tickmesh.config import ConfigError, setting


@dataclass(frozen=True)
class WatchlistsSettings:
    nats_url: str = setting("NATS_URL", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated")
    history: int = setting(
        "WATCHLISTS_HISTORY", 50, "Changes watchlist.history returns (at most 64: the bucket keeps 64 revisions)"
    )
    max_attempts: int = setting(
        "WATCHLISTS_MAX_ATTEMPTS", 20, "Times an edit is re-read and merged when other writes keep winning the race"
    )

    def validate(self) -> None:
        if not 1 <= self.history <= 64:
            raise ConfigError("WATCHLISTS_HISTORY", str(self.history), "must be 1 to 64")
        if self.max_attempts < 1:
            raise ConfigError("WATCHLISTS_MAX_ATTEMPTS", str(self.max_attempts), "must be at least 1")
