"""portfolio-valuer settings, read once from the environment."""

from __future__ import annotations

from dataclasses import dataclass

from tickmesh.config import ConfigError, setting


@dataclass(frozen=True)
class ValuerSettings:
    nats_url: str = setting("NATS_URL", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated")
    max_hz: float = setting("VALUER_MAX_HZ", 4.0,
                            "Most portfolio updates per second per user (the last change always goes out)")

    def validate(self) -> None:
        if not 0 < self.max_hz <= 1000:
            raise ConfigError("VALUER_MAX_HZ", str(self.max_hz), "must be in (0, 1000] updates/s")
