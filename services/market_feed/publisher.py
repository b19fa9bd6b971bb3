"""Publishes validated ticks on NATS.

Every tick is checked against the ``tick`` schema before it leaves (a provider bug must not
reach browsers) and carries a ``Tm-Seq`` header: a per-symbol version that strictly increases,
taken from the ingest clock so that it also keeps increasing across restarts of market-feed.

Each publication is counted (``tickmesh_messages_total{direction="out",class="state"}`` and its
bytes) and its provider-to-NATS latency observed (``tickmesh_publish_latency_seconds``), except
for stale marks, whose ``ts`` is deliberately old. A tick that breaks the contract is counted as
dropped (reason ``invalid``). A sampled tick's ``traceparent`` goes into the headers.
"""

from __future__ import annotations

import logging
from typing import Any

from tickmesh import metrics, tracing
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

    def subject(self, symbol: str) -> str:
        subject = self._subjects.get(symbol)
        if subject is None:
            subject = self._subjects[symbol] = tick_subject(symbol)
        return subject

    async def publish(self, tick: dict[str, Any], trace: Any = tracing.UNSAMPLED) -> bool:
        """Validate and publish ``tick``; returns False (and logs) when it breaks the contract.

        ``trace`` is the tick's :mod:`tickmesh.tracing` trace: when sampled, the headers carry
        the context of its innermost open step (the caller's ``feed.publish``) so the edge and
        the portfolio-valuer continue it. NATS errors propagate to the caller.
        """
        try:
            payload = messages.encode("tick", tick)
        except messages.ContractError as exc:
            self.rejected += 1
            metrics.dropped("invalid")
            log.warning("dropped a tick that breaks the contract: %s", exc, extra={"event": "feed.invalid_tick"})
            return False
        symbol = tick["symbol"]
        subject = self._subjects.get(symbol) or self.subject(symbol)
        headers = {SEQ_HEADER: str(self.next_seq(symbol, tick["ingest_ts"]))}
        if trace.sampled:
            trace.inject(headers)
        await self.nc.publish(subject, payload, headers=headers)
        self.published += 1
        metrics.messages_out("state", 1, len(payload))
        if "stale" not in tick:
            metrics.observe_publish_latency("state", tick["ts"])
        return True
