"""Admission: who may connect, stay connected, and act, on every transport and endpoint.

One object per edge decides, for the WebSocket, SSE, long polling, ``POST /cmd``,
``POST /ticket`` and ``POST /dev/token`` alike:

* **Revocation.** A user revoked on ``tm.ctl.revoke`` is refused everywhere, for every token
  issued at or before the revocation. Revocations are kept in the ``TM_REVOCATIONS`` stream
  for ``EDGE_REVOCATION_TTL_S``, so an edge that starts (or restarts) after a revocation knows
  it too: the stream is read from its start before the edge reports ready.
* **Connection limits.** Open connections, streams and in-flight HTTP commands count per user
  and per source address.
* **Rate limits.** Commands per user (one token bucket shared by all the user's connections
  and ``POST /cmd``), and HTTP requests per address and per user on the endpoints that are not
  streams.

A refusal names its condition once (:class:`Refusal`), with the close code of
``contracts/codes.toml``; the WebSocket closes with that code, and HTTP answers with the
status the table gives and an ``err`` body carrying the same code. So the same condition gets
the same code on every transport.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tickmesh import metrics
from tickmesh.contracts.codes import CloseCode, ErrorCode, http_status

from .identity import Identity
from .limits import Counter, TokenBucket

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request or connection is refused: a code from the table and a reason for people.

    ``code`` is a close code for conditions that end a connection (revoked, limits, draining)
    and an error code for those that only refuse one request (a rate limit)."""

    code: int
    reason: str

    @property
    def http_status(self) -> int:
        return http_status(self.code)

    def frame(self) -> dict:
        return {"op": "err", "code": self.code, "reason": self.reason}


class Buckets:
    """Token buckets by key, created on first use and forgotten once full again (an idle full
    bucket is the same as a new one), so the map holds only recently active keys."""

    __slots__ = ("rate", "burst", "_by_key")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._by_key: dict[str, TokenBucket] = {}

    def get(self, key: str, now: float) -> TokenBucket:
        bucket = self._by_key.get(key)
        if bucket is None:
            bucket = self._by_key[key] = TokenBucket(self.rate, self.burst, now)
        return bucket

    def take(self, key: str, now: float) -> float:
        """0 when a token was taken, else the seconds until one is available."""
        return self.get(key, now).take(now)

    def forget_idle(self, now: float) -> None:
        refill = self.burst / self.rate + 1.0
        for key, bucket in list(self._by_key.items()):
            if now - bucket.updated > refill:
                del self._by_key[key]

    def __len__(self) -> int:
        return len(self._by_key)


class UserBucket:
    """A handle on one user's bucket in :class:`Buckets`, looked up at each use: a connection
    holds this small handle, not the bucket, so idle users cost no bucket at all and a
    forgotten bucket is never kept alive by a connection (two of the user's connections always
    share one)."""

    __slots__ = ("_buckets", "_user")

    def __init__(self, buckets: Buckets, user: str) -> None:
        self._buckets = buckets
        self._user = user

    def take(self, now: float, cost: float = 1.0) -> float:
        return self._buckets.get(self._user, now).take(now, cost)

    def peek(self, now: float, cost: float = 1.0) -> float:
        return self._buckets.get(self._user, now).peek(now, cost)


class Admission:
    """The edge's admission decisions. Plain state with time passed in; no I/O here (the
    revocation feed is read by :mod:`revocations` and handed in through :meth:`revoke`)."""

    def __init__(
        self,
        *,
        max_conns_per_user: int,
        max_conns_per_ip: int,
        cmd_rate: float,
        cmd_burst: float,
        http_rate: float,
        http_burst: float,
        http_ip_rate: float,
        http_ip_burst: float,
        revocation_ttl: float,
    ) -> None:
        self.per_user = Counter(max_conns_per_user)
        self.per_ip = Counter(max_conns_per_ip)
        self.commands = Buckets(cmd_rate, cmd_burst)
        self.http_by_ip = Buckets(http_ip_rate, http_ip_burst)
        self.http_by_user = Buckets(http_rate, http_burst)
        self.revocation_ttl = revocation_ttl
        self.revoked: dict[str, float] = {}  # user -> revocation time (Unix seconds)
        self.draining = False
        self._ticks = 0

    # -- conditions ------------------------------------------------------------------------

    def revoked_refusal(self, identity: Identity) -> Refusal | None:
        """Refuse every token issued at or before the user's revocation."""
        at = self.revoked.get(identity.user)
        if at is not None and identity.issued_at <= at:
            return Refusal(int(CloseCode.FORBIDDEN), "user revoked")
        return None

    def open_peer(self, peer: str) -> Refusal | None:
        """Count one more connection from ``peer``; release it with :meth:`close_peer`."""
        if self.draining:
            return Refusal(int(CloseCode.SHUTDOWN), "edge shutting down; reconnect")
        if not self.per_ip.acquire(peer):
            metrics.rate_limited("connection")
            return Refusal(int(CloseCode.CONNECTION_LIMIT), "too many connections from this address")
        return None

    def close_peer(self, peer: str) -> None:
        self.per_ip.release(peer)

    def open_user(self, identity: Identity) -> Refusal | None:
        """Revocation, then the per-user connection count; release with :meth:`close_user`."""
        refusal = self.revoked_refusal(identity)
        if refusal is not None:
            metrics.auth_failed("revoked")
            return refusal
        if not self.per_user.acquire(identity.user):
            metrics.rate_limited("connection")
            return Refusal(int(CloseCode.CONNECTION_LIMIT), f"at most {self.per_user.maximum} connections per user")
        return None

    def close_user(self, user: str) -> None:
        self.per_user.release(user)

    def command_limiter(self, user: str) -> UserBucket:
        """The user's command bucket, shared by all their connections and ``POST /cmd``; made
        when the user first sends a command, forgotten once full again."""
        return UserBucket(self.commands, user)

    def http_address(self, peer: str, now: float) -> Refusal | None:
        """One request from ``peer`` to a non-streaming HTTP endpoint (``/ticket``, ``/cmd``,
        ``/dev/token``), checked before anything else is done for it."""
        return self._http(self.http_by_ip, peer, now)

    def http_user(self, user: str, now: float) -> Refusal | None:
        """The same request counted for its user, once known (``/ticket``, ``/dev/token``;
        ``/cmd``'s per-user limit is the command bucket, as on the WebSocket)."""
        return self._http(self.http_by_user, user, now)

    def _http(self, buckets: Buckets, key: str, now: float) -> Refusal | None:
        wait = buckets.take(key, now)
        if wait > 0:
            metrics.rate_limited("http")
            return Refusal(int(ErrorCode.RATE_LIMITED), f"too many requests: retry in {_ms(wait)} ms")
        return None

    # -- revocations -----------------------------------------------------------------------

    def revoke(self, user: str, at: float) -> bool:
        """Record that ``user`` was revoked at ``at`` (Unix seconds). False when an equal or
        newer revocation of the user is already known (the caller then has nothing to close)."""
        known = self.revoked.get(user)
        if known is not None and known >= at:
            return False
        self.revoked[user] = at
        return True

    def tick(self, now: float) -> None:
        """Forget what no longer matters (old revocations, buckets idle long enough to be full
        again); called once a second, it sweeps every tenth call."""
        self._ticks += 1
        if self._ticks % 10:
            return
        ttl = self.revocation_ttl
        for user, at in list(self.revoked.items()):
            if now - at > ttl:
                del self.revoked[user]
        self.commands.forget_idle(now)
        self.http_by_ip.forget_idle(now)
        self.http_by_user.forget_idle(now)


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000 + 0.999))
