"""flags service settings, read once from the environment."""

from __future__ import annotations

from dataclasses import dataclass

from tickmesh.config import setting


@dataclass(frozen=True)
class FlagServiceSettings:
    nats_url: str = setting("NATS_URL", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated")
