"""announcer settings, read once from the environment."""

from __future__ import annotations

from dataclasses import dataclass

from tickmesh.config import ConfigError, setting


@dataclass(frozen=True)
class AnnouncerSettings:
    nats_url: str = setting("NATS_URL", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated")
    default_ttl: float = setting(
        "ANNOUNCER_DEFAULT_TTL_S",
        86400.0,
        "Seconds an announcement without ends_at stays current (it always carries one)",
    )

    def validate(self) -> None:
        if self.default_ttl <= 0:
            raise ConfigError("ANNOUNCER_DEFAULT_TTL_S", str(self.default_ttl), "must be positive")
