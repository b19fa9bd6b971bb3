"""portfolio-valuer settings, read once from the environment."""

from __future__ import annotations

from dataclasses import dataclass

from tickmesh.config import ConfigError, setting


@dataclass(frozen=True)
class ValuerSettings:
    nats_url: str = setting("NATS_URL", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated")
    max_hz: float = setting("VALUER_MAX_HZ", 4.0,
                            "Most portfolio updates per second per user (the last change always goes out)")

    shards: int = setting("VALUER_SHARDS", 1, "Valuer instances sharing the users (each values a stable 1/N of them)")
    shard: int = setting("VALUER_SHARD", 0, "This instance's shard, 0 .. VALUER_SHARDS-1")

    def validate(self) -> None:
        if not 0 < self.max_hz <= 1000:
            raise ConfigError("VALUER_MAX_HZ", str(self.max_hz), "must be in (0, 1000] updates/s")
        if self.shards < 1:
            raise ConfigError("VALUER_SHARDS", str(self.shards), "must be at least 1")
        if not 0 <= self.shard < self.shards:
            raise ConfigError("VALUER_SHARD", str(self.shard), f"must be in 0..{self.shards - 1}")
