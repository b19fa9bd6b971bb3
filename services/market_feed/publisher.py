"""Publishes validated ticks on NATS.

Every tick is checked against the ``tick`` schema before it leaves (a provider bug must not
reach browsers) and carries a ``Tm-Seq`` header: a per-symbol version that strictly increases,
taken from the ingest clock so that it also keeps increasing across restarts of market-feed.
"""

from __future__ import annotations

import logging
from typing import Any

from tickmesh.contracts import messages
from tickmesh.contracts.channels import tick_subject
from tickmesh.contracts.messages import SEQ_HEADER

log = logging.getLogger(__name__)


class TickPublisher:
    def __init__(self, nc: Any) -> None:
        self.nc = nc
        self._seq: dict[str, int] = {}
        self._subjects: dict[str, str] = {}
        self.published = 0
        self.rejected = 0

    def next_seq(self, symbol: str, ingest_ts: int) -> int:
        seq = max(self._seq.get(symbol, 0) + 1, ingest_ts)
        self._seq[symbol] = seq
        return seq

    async def publish(self, tick: dict[str, Any]) -> bool:
        """Validate and publish ``tick``; returns False (and logs) when it breaks the contract."""
        try:
            payload = messages.encode("tick", tick)
        except messages.ContractError as exc:
            self.rejected += 1
            log.warning("dropped a tick that breaks the contract: %s", exc, extra={"event": "feed.invalid_tick"})
            return False
        symbol = tick["symbol"]
        subject = self._subjects.get(symbol)
        if subject is None:
            subject = self._subjects[symbol] = tick_subject(symbol)
        seq = self.next_seq(symbol, tick["ingest_ts"])
        await self.nc.publish(subject, payload, headers={SEQ_HEADER: str(seq)})
        self.published += 1
        return True
