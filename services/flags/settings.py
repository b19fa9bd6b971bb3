"""flags service settings, read once from the environment."""

from __future__ import annotations

from dataclasses import dataclass

from tickmesh.config import ConfigError, setting


@dataclass(frozen=True)
class FlagServiceSettings:
    nats_url: str = setting("NATS_URL", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated")
    audit_max_age: float = setting("TM_RETAIN_FLAG_AUDIT_S", 31_536_000.0,
                                   "Seconds flag-change audit records are kept (stream TM_FLAG_AUDIT; default 365 days)")

    def validate(self) -> None:
        if self.audit_max_age <= 0:
            raise ConfigError("TM_RETAIN_FLAG_AUDIT_S", str(self.audit_max_age), "must be positive")
