"""portfolio-valuer settings, read once from the environment."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

from tickmesh.config import ConfigError, setting

_ORDINAL = re.compile(r"-(\d+)$")


def ordinal_of(hostname: str) -> int | None:
    """The ordinal at the end of a StatefulSet pod's name (``tm-tickmesh-portfolio-valuer-2`` is
    2), or None."""
    m = _ORDINAL.search(hostname)
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class ValuerSettings:
    nats_url: str = setting("NATS_URL", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated")
    max_hz: float = setting(
        "VALUER_MAX_HZ", 4.0, "Most portfolio updates per second per user (the last change always goes out)"
    )

    shards: int = setting(
        "VALUER_SHARDS",
        1,
        "Shards the users are split into by a stable hash of their id (one instance "
        "per shard; a lost instance's shard is taken over by another)",
    )
    shard: str = setting(
        "VALUER_SHARD",
        "0",
        "This instance's shard, 0 .. VALUER_SHARDS-1, or `ordinal`: the number ending the host "
        "name (a StatefulSet pod's ordinal)",
    )
    fill_wait: float = setting(
        "VALUER_FILL_WAIT_S",
        1.0,
        "Longest an account change that applied a fill waits for that fill's execution on "
        "the trades stream before it is valued anyway (its valuation names the fills seen)",
    )
    lease_ttl: float = setting(
        "VALUER_LEASE_TTL_S",
        6.0,
        "Seconds a lost instance's shards wait before another takes them over (its leases' "
        "TTL, whole seconds, at least 2; renewed every third of it)",
    )

    @property
    def home_shard(self) -> int:
        """The shard this instance values (``VALUER_SHARD`` resolved)."""
        if self.shard.strip() == "ordinal":
            host = socket.gethostname()
            ordinal = ordinal_of(host)
            if ordinal is None:
                raise ConfigError("VALUER_SHARD", self.shard, f"the host name {host!r} does not end in -N")
            return ordinal
        try:
            return int(self.shard)
        except ValueError:
            raise ConfigError("VALUER_SHARD", self.shard, "must be a whole number or `ordinal`") from None

    def validate(self) -> None:
        if not 0 < self.max_hz <= 1000:
            raise ConfigError("VALUER_MAX_HZ", str(self.max_hz), "must be in (0, 1000] updates/s")
        if not 0 <= self.fill_wait <= 60:
            raise ConfigError("VALUER_FILL_WAIT_S", str(self.fill_wait), "must be 0 to 60 seconds")
        if self.shards < 1:
            raise ConfigError("VALUER_SHARDS", str(self.shards), "must be at least 1")
        if not 2 <= self.lease_ttl <= 300:
            raise ConfigError("VALUER_LEASE_TTL_S", str(self.lease_ttl), "must be 2 to 300 seconds")
        if not 0 <= self.home_shard < self.shards:
            raise ConfigError("VALUER_SHARD", self.shard, f"must be in 0..{self.shards - 1}")
