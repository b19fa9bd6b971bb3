"""Per-client stream positions on an event channel: resume with ``since``, count gaps and duplicates.

The reconnect storm (:mod:`tickmesh.ops.bench.storm`) needs to know, for every client, whether
the edge kept the event channel's promise across a drop: every message after the client's
position, exactly once. This is the sans-I/O bookkeeping for that, kept cheap because a load
client holds ~18,000 connections: one :class:`Position` per connection (``__slots__``), one
``bytearray`` byte per stream position it expects, one regex over each received WebSocket
message (:func:`msg_seqs`) and no JSON decoding except of the ``ok`` replies.

Positions are stream sequences. The bench publishes into a stream that only it writes (``news``
on a nats-server it started: ``TM_NEWS`` stores ``tm.news`` alone), so the positions a client
must receive are dense: every sequence from the one after the first ``ok``'s ``seq`` onwards.

Counted per client:

- **duplicates**: a position received twice, or one at or before the position the client
  started from (the edge must never send those);
- **gaps**: a position between the start and ``max(last received, cut-off)`` that never came
  (:meth:`Position.gaps`, at the end);
- **not recovered**: an ``ok`` of a resubscription with ``recovered: false`` (its ``reason`` is
  kept by the caller);
- **early**: a ``msg`` before the channel's first ``ok`` (the protocol forbids it).
"""

from __future__ import annotations

import re
from collections.abc import Callable

GROW = 256  # positions added to a client's bitmap at a time


def msg_seqs(channel: str) -> Callable[[bytes], list[bytes]]:
    """``findall`` for the stream positions of ``channel``'s ``msg`` frames in a raw WebSocket
    message (one frame or a batch), in order. Relies on the edge's JSON encoding, which writes
    ``op``, ``ch`` and ``seq`` first and in this order (edge/frames.py)."""
    return re.compile(rb'"op":"msg","ch":"%s","seq":(\d+)' % re.escape(channel.encode())).findall


class Position:
    """Where one client is on one event channel, and what it has seen since it first subscribed."""

    __slots__ = (
        "epoch",
        "base",
        "last",
        "seen",
        "dups",
        "early",
        "catchup",
        "ok_at",
        "recovered_at",
        "not_recovered",
        "asked",
        "last_ok",
    )

    def __init__(self) -> None:
        self.epoch: str | None = None  # None until the first ok
        self.base = 0  # first position the client must receive (first ok's seq + 1)
        self.last = 0  # the position the client has: the highest received, or an ok's seq
        self.seen = bytearray()  # seen[i] == 1: position base + i arrived
        self.dups = 0
        self.early = 0
        self.catchup = 0  # after a resubscription: the last replayed position still to arrive
        self.ok_at = 0.0  # wall clock of the latest ok (the channel is subscribed since)
        self.recovered_at = 0.0  # wall clock when the latest resubscription had caught up
        self.not_recovered = 0
        self.asked = 0  # the since.seq of the latest sub (-1: sent without since)
        self.last_ok: tuple | None = None  # (since.seq asked, ok seq, replayed, recovered) of the latest ok

    def since(self) -> dict | None:
        """The ``since`` of a resubscription (None before the first ``ok``: subscribe live)."""
        self.asked = -1 if self.epoch is None else self.last
        return None if self.epoch is None else {"epoch": self.epoch, "seq": self.last}

    def on_ok(self, ok: dict, now: float) -> bool:
        """An ``ok`` of the channel's ``sub``; returns its ``recovered`` flag (True when absent).

        The first ``ok`` fixes the start. On a resubscription, ``seq`` is the last replayed
        position (those messages follow the ``ok``), or, when nothing was replayed, the position
        to continue from: the client has recovered once that position has arrived.
        """
        seq = int(ok.get("seq") or 0)
        recovered = ok.get("recovered", True) is not False
        self.ok_at = now
        self.last_ok = (self.asked, seq, ok.get("replayed"), ok.get("recovered"))
        if self.epoch is None:
            self.epoch, self.base, self.last = str(ok.get("epoch")), seq + 1, seq
            self.recovered_at = now
            return recovered
        if not recovered:
            self.not_recovered += 1
        if ok.get("epoch") is not None:
            self.epoch = str(ok["epoch"])
        if ok.get("replayed") and seq > self.last:
            self.catchup, self.recovered_at = seq, 0.0
        else:
            self.last = max(self.last, seq)
            self.catchup, self.recovered_at = 0, now
        return recovered

    def on_msgs(self, seqs: list[bytes], now: float) -> None:
        """The positions found in one received WebSocket message, in order."""
        if self.epoch is None:
            self.early += len(seqs)
            return
        seen, base = self.seen, self.base
        for raw in seqs:
            seq = int(raw)
            i = seq - base
            if i < 0:
                self.dups += 1
                continue
            if i >= len(seen):
                seen.extend(bytes(max(GROW, i + 1 - len(seen))))
            if seen[i]:
                self.dups += 1
            else:
                seen[i] = 1
            if seq > self.last:
                self.last = seq
        if self.catchup and self.last >= self.catchup:
            self.catchup, self.recovered_at = 0, now

    def gaps(self, upto: int = 0) -> int:
        """Positions from the start to ``max(upto, last received)`` that never arrived."""
        if self.epoch is None:
            return 0
        n = max(upto, self.last) - self.base + 1
        if n <= 0:
            return 0
        covered = min(n, len(self.seen))
        return self.seen.count(0, 0, covered) + (n - covered)

    def first_gap(self, upto: int = 0) -> tuple[int, int] | None:
        """The first run of missing positions (first, last), for the report; None if none."""
        if not self.gaps(upto):
            return None
        i = self.seen.find(0)
        if i < 0:
            return self.base + len(self.seen), max(upto, self.last)
        j = self.seen.find(1, i)
        return self.base + i, (self.base + j - 1) if j >= 0 else max(upto, self.last)

    def caught_up(self, upto: int) -> bool:
        return self.epoch is not None and self.last >= upto
