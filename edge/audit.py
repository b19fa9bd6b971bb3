"""The audit trail of trade events: when each reached each of its user's connections, and when
the client acknowledged it, written to JetStream (``TM_TRADE_AUDIT``) in batches.

The cost on the fan-out is one tuple appended to a bounded list per delivery (see
:meth:`TradeAudit.delivered`, called when a connection's outbox is drained into its transport);
everything else (reading the execution's ids out of the frame, grouping by user, encoding,
publishing and retrying) happens in a background task every ``EDGE_AUDIT_FLUSH_MS``.

Guarantees and limits:

* ``delivered`` means handed to the transport: written to the WebSocket's send buffer, or put
  in the SSE stream or the long poll's response. ``acked`` means the client's ``ack`` named the
  position; only positions delivered on that connection are recorded as acked.
* Records are written at least once (a batch is retried with the same ``Nats-Msg-Id`` while
  NATS is away; JetStream stores it once within its duplicate window) and in order per edge.
* Memory is bounded: at most ``EDGE_AUDIT_MAX_RECORDS`` records wait (in the buffer and in
  batches NATS has not taken); beyond that the oldest are dropped, counted in
  ``tickmesh_edge_audit_records_total{result="dropped"}`` and logged, never blocking delivery.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
import time
from typing import Any

import orjson

from tickmesh import metrics
from tickmesh.contracts import streams as stream_table
from tickmesh.contracts.channels import trade_audit_subject

from .frames import CODECS

log = logging.getLogger(__name__)

STREAM = stream_table.stream("trade_audit").name
MAX_PER_MESSAGE = 500  # records in one NATS message (messages.toml: trade_audit.records, at most 1000)
_ID_FIELDS = ("exec_id", "order_id", "client_order_id", "status")
_IDS_KEPT = 8192  # positions whose execution ids are remembered (for acks arriving after delivery)

# A record as buffered: (event, user, conn_id, transport, epoch, seq, at_us, frame, codec).
Record = tuple


def edge_name() -> str:
    """This edge process, as records name it: host name (the pod's name on Kubernetes) and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"[:128]


class TradeAudit:
    def __init__(self, *, edge: str, flush_s: float, max_records: int, enabled: bool = True) -> None:
        self.edge = edge
        self.enabled = enabled
        self.flush_s = flush_s
        self.max_records = max_records
        self._buf: list[Record] = []
        self._unsent: list[tuple[str, bytes, str, int]] = []  # (subject, payload, msg id, records)
        self._unsent_records = 0
        self._ids: dict[int, dict[str, str]] = {}
        self._subjects: dict[str, str] = {}
        self._batch_ids = itertools.count(1)
        self._boot = f"{edge}:{time.time_ns():x}"
        self._js: Any = None
        self._task: asyncio.Task | None = None
        # One flush at a time: the writer's and stop()'s may overlap (a cancellation that
        # asyncio.wait_for swallows lets the writer's publish finish after stop() began its own).
        self._flushing = asyncio.Lock()
        self.written = 0
        self.dropped = 0
        self._warned = 0.0

    # -- recording (the hot path: no work beyond an append) ----------------------------------

    def delivered(
        self, user: str, conn_id: str, transport: str, epoch: str | None, seq: int, at_us: int, frame: bytes, codec: int
    ) -> None:
        buf = self._buf
        if len(buf) < self.max_records:
            buf.append(("delivered", user, conn_id, transport, epoch, seq, at_us, frame, codec))
        else:
            self.dropped += 1

    def acked(self, user: str, conn_id: str, transport: str, epoch: str | None, seq: int, at_us: int) -> None:
        buf = self._buf
        if len(buf) < self.max_records:
            buf.append(("acked", user, conn_id, transport, epoch, seq, at_us, None, 0))
        else:
            self.dropped += 1

    # -- batching (sans I/O) ---------------------------------------------------------------

    def _ids_of(self, seq: int, frame: bytes | None, codec: int) -> dict[str, str]:
        ids = self._ids.get(seq)
        if ids is not None or frame is None:
            return ids or {}
        try:
            data = CODECS[codec].decode(frame).get("data")
        except Exception:  # a frame the edge built; a payload it cannot read is recorded without ids
            data = None
        ids = {}
        if type(data) is dict:
            for k in _ID_FIELDS:
                v = data.get(k)
                if type(v) is str:
                    ids[k] = v[:64]
        if len(self._ids) >= _IDS_KEPT:
            self._ids.clear()
        self._ids[seq] = ids
        return ids

    def batches(self, records: list[Record], now_us: int) -> list[tuple[str, bytes, str, int]]:
        """``records`` as NATS messages: ``(subject, payload, msg id, record count)``, one
        ``trade_audit`` message per user and at most :data:`MAX_PER_MESSAGE` records each."""
        by_user: dict[str, list[dict[str, Any]]] = {}
        for event, user, conn_id, transport, epoch, seq, at_us, frame, codec in records:
            rec: dict[str, Any] = {"event": event, "conn_id": conn_id, "transport": transport, "seq": seq, "at": at_us}
            if epoch is not None:
                rec["epoch"] = epoch
            rec.update(self._ids_of(seq, frame, codec))
            by_user.setdefault(user, []).append(rec)
        out = []
        subjects = self._subjects
        for user, recs in by_user.items():
            subject = subjects.get(user)
            if subject is None:
                if len(subjects) >= _IDS_KEPT:
                    subjects.clear()
                subject = subjects[user] = trade_audit_subject(user)
            for start in range(0, len(recs), MAX_PER_MESSAGE):
                chunk = recs[start : start + MAX_PER_MESSAGE]
                payload = orjson.dumps({"user": user, "edge": self.edge, "records": chunk, "ts": now_us})
                out.append((subject, payload, f"{self._boot}:{next(self._batch_ids)}", len(chunk)))
        return out

    def _queue(self, batches: list[tuple[str, bytes, str, int]]) -> None:
        self._unsent.extend(batches)
        self._unsent_records += sum(b[3] for b in batches)
        while self._unsent and self._unsent_records > self.max_records:
            lost = self._unsent.pop(0)
            self._unsent_records -= lost[3]
            self.dropped += lost[3]

    # -- writing (the background task) -----------------------------------------------------

    def start(self, js: Any) -> None:
        self._js = js
        if self._task is None and self.enabled:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self, timeout: float = 2.0) -> None:
        """Write what is buffered (within ``timeout``), then stop."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        try:
            await asyncio.wait_for(self.flush(), timeout)
        except Exception:  # the deadline passed (TimeoutError) or NATS refused: nothing more to do
            pass
        self._report()

    async def _run(self) -> None:
        me = asyncio.current_task()
        while self._task is me:  # stop() clears it, in case the cancellation is swallowed
            await asyncio.sleep(self.flush_s)
            if self._task is not me:
                return
            try:
                await self.flush()
            except Exception:  # never let the audit writer die; the next round retries
                log.exception("audit flush failed", extra={"event": "audit.flush_failed"})
            self._report()

    async def flush(self) -> None:
        """Batch what was recorded and publish every batch NATS has not taken yet, in order,
        each once: concurrent calls take turns."""
        async with self._flushing:
            await self._flush()

    async def _flush(self) -> None:
        if self._buf:
            records, self._buf = self._buf, []
            self._queue(self.batches(records, time.time_ns() // 1000))
        js = self._js
        while self._unsent and js is not None:
            subject, payload, msg_id, count = self._unsent[0]
            try:
                await js.publish(subject, payload, stream=STREAM, headers={"Nats-Msg-Id": msg_id}, timeout=5.0)
            except Exception as exc:
                now = time.monotonic()
                if now - self._warned > 30:
                    self._warned = now
                    log.warning(
                        "audit records not written yet (%s); %d waiting",
                        type(exc).__name__,
                        self._unsent_records,
                        extra={"event": "audit.write_failed"},
                    )
                return
            self._unsent.pop(0)
            self._unsent_records -= count
            self.written += count

    def _report(self) -> None:
        if self.written:
            metrics.audit_records("written", self.written)
            self.written = 0
        if self.dropped:
            metrics.audit_records("dropped", self.dropped)
            log.warning(
                "%d audit records dropped (EDGE_AUDIT_MAX_RECORDS)",
                self.dropped,
                extra={"event": "audit.dropped", "records": self.dropped},
            )
            self.dropped = 0
