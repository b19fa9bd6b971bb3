"""Coinbase Advanced Trade public market data: the ``ticker`` and ``heartbeats`` channels.

Per connection (:class:`CoinbaseSession`, sans-I/O):

* both subscriptions are sent as soon as the socket opens (Coinbase drops a connection that has
  not subscribed within 5 s), one message per channel as the API requires;
* ``sequence_num`` must grow by one per message and ``heartbeat_counter`` by one per heartbeat:
  any other step is a gap, counted in :class:`~.provider.ProviderStats` and in
  ``tickmesh_provider_gaps_total{provider="coinbase"}``, and logged at most once per counter per
  10 s (with the number of lines held back; the limit outlives connections). A ticker
  message carries the full state of its products, so a gap needs no resubscription: the next
  update repairs it;
* no heartbeat for ``heartbeat_timeout`` seconds means the connection is dead: it is dropped and
  a new one resubscribes (its first ticker event is a snapshot);
* unknown channels and message types are ignored, as Coinbase asks.

Rate limits (8 connections and 8 unauthenticated messages per second per IP) are kept by a
connection floor of 0.5 s: at most two connections, four subscribe messages, per second.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from tickmesh import metrics
from tickmesh.backoff import Backoff

from .connection import run_websocket
from .loglimit import LogLimiter
from .normalise import Tick, decode_json, from_coinbase_ticker
from .provider import Emit, ProviderStats

log = logging.getLogger(__name__)

DEFAULT_URL = "wss://advanced-trade-ws.coinbase.com"
CHANNELS = ("ticker", "heartbeats")
MIN_CONNECT_INTERVAL_S = 0.5


class CoinbaseSession:
    def __init__(
        self,
        products: tuple[str, ...],
        *,
        now: float,
        heartbeat_timeout: float,
        stats: ProviderStats,
        gap_log: LogLimiter | None = None,
    ) -> None:
        self.products = products
        self.gap_log = gap_log or LogLimiter()
        self.heartbeat_timeout = heartbeat_timeout
        self.stats = stats
        # The first heartbeat follows the subscription; allow one extra period for the handshake.
        self.deadline = now + 2 * heartbeat_timeout
        self.healthy = False
        self.reconnect: str | None = None
        self._seq: int | None = None
        self._heartbeat: int | None = None

    def opening(self) -> list[str]:
        return [json.dumps({"type": "subscribe", "product_ids": list(self.products), "channel": ch}) for ch in CHANNELS]

    def receive(self, text: str, *, now: float, recv_us: int) -> list[Tick]:
        try:
            msg = decode_json(text)
        except ValueError:
            msg = None
        if not isinstance(msg, dict):
            self.stats.ignored += 1
            return []
        if msg.get("type") == "error":
            self.stats.errors += 1
            log.warning(
                "coinbase error: %s",
                str(msg.get("message"))[:200],
                extra={"event": "feed.provider_error", "provider": "coinbase"},
            )
            return []
        self._seq = self._check("sequence_num", self._seq, msg.get("sequence_num"), now)
        channel = msg.get("channel")
        if channel == "ticker":
            self.healthy = True
            return from_coinbase_ticker(msg, ingest_ts=recv_us)
        if channel == "heartbeats":
            self.healthy = True
            self.deadline = now + self.heartbeat_timeout
            for event in msg.get("events") or ():
                if isinstance(event, dict):
                    self._heartbeat = self._check(
                        "heartbeat_counter", self._heartbeat, event.get("heartbeat_counter"), now
                    )
            return []
        if channel == "subscriptions":
            self.healthy = True
            log.info("coinbase subscriptions acknowledged", extra={"event": "feed.subscribed", "provider": "coinbase"})
            return []
        self.stats.ignored += 1
        return []

    def _check(self, name: str, last: int | None, value: Any, now: float) -> int | None:
        """Count and log a step other than +1 in a per-connection counter; returns the new last."""
        got = _as_int(value)
        if got is None:
            return last
        if last is not None and got != last + 1:
            self.stats.gaps += 1
            metrics.provider_gap("coinbase")
            if got > last + 1:
                self.stats.missed += got - last - 1
            suppressed = self.gap_log.allow(name, now)
            if suppressed is not None:
                log.warning(
                    "coinbase %s gap: expected %d, got %d (%d such lines held back)",
                    name,
                    last + 1,
                    got,
                    suppressed,
                    extra={
                        "event": "feed.gap",
                        "provider": "coinbase",
                        "counter": name,
                        "expected": last + 1,
                        "got": got,
                        "suppressed": suppressed,
                    },
                )
        return got


def _as_int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


class CoinbaseProvider:
    name = "coinbase"

    def __init__(
        self,
        products: tuple[str, ...],
        *,
        url: str = DEFAULT_URL,
        heartbeat_timeout: float = 3.0,
        reconnect_max: float = 30.0,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not products:
            raise ValueError("coinbase needs at least one product")
        self.products = products
        self.url = url
        self.heartbeat_timeout = heartbeat_timeout
        self.backoff = backoff or Backoff(base=0.5, cap=reconnect_max, min_interval=MIN_CONNECT_INTERVAL_S)
        self.clock = clock
        self.stats = ProviderStats()
        self.gap_log = LogLimiter()

    def session(self, now: float) -> CoinbaseSession:
        return CoinbaseSession(
            self.products, now=now, heartbeat_timeout=self.heartbeat_timeout, stats=self.stats, gap_log=self.gap_log
        )

    async def run(self, emit: Emit) -> None:
        await run_websocket(
            name=self.name,
            url=self.url,
            new_session=self.session,
            emit=emit,
            backoff=self.backoff,
            stats=self.stats,
            clock=self.clock,
        )
