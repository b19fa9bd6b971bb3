"""The edge's settings, read once from the environment (``tickmesh settings edge`` lists them)."""

from __future__ import annotations

from dataclasses import dataclass

from tickmesh.config import ConfigError, setting


@dataclass(frozen=True)
class EdgeSettings:
    nats_url: str = setting("NATS_URL", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated")
    host: str = setting("EDGE_HOST", "127.0.0.1", "Address the edge listens on")
    port: int = setting("EDGE_PORT", 8000, "TCP port the edge listens on")
    max_subscriptions: int = setting("EDGE_MAX_SUBSCRIPTIONS", 256, "Subscriptions per connection")
    max_frame_bytes: int = setting("EDGE_MAX_FRAME_BYTES", 65536,
                                   "Largest client frame handled (bytes); larger ones get error 103")
    hard_frame_bytes: int = setting("EDGE_HARD_FRAME_BYTES", 1048576,
                                    "Largest WebSocket message accepted at all (bytes); larger closes with 1009")
    outbox_max_frames: int = setting("EDGE_OUTBOX_MAX_FRAMES", 2048,
                                     "Event frames queued per connection before it counts as a slow consumer")
    outbox_max_bytes: int = setting("EDGE_OUTBOX_MAX_BYTES", 4194304,
                                    "Bytes queued per connection before it counts as a slow consumer")

    def validate(self) -> None:
        if not 0 < self.port < 65536:
            raise ConfigError("EDGE_PORT", str(self.port), "must be 1-65535")
        for env, value in (("EDGE_MAX_SUBSCRIPTIONS", self.max_subscriptions),
                           ("EDGE_MAX_FRAME_BYTES", self.max_frame_bytes),
                           ("EDGE_OUTBOX_MAX_FRAMES", self.outbox_max_frames),
                           ("EDGE_OUTBOX_MAX_BYTES", self.outbox_max_bytes)):
            if value <= 0:
                raise ConfigError(env, str(value), "must be positive")
        if self.hard_frame_bytes < self.max_frame_bytes:
            raise ConfigError("EDGE_HARD_FRAME_BYTES", str(self.hard_frame_bytes),
                              "must be at least EDGE_MAX_FRAME_BYTES")
