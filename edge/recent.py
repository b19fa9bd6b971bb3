"""The events an edge has received live, kept per subject within a byte budget, so that most
recoveries are answered from memory instead of from JetStream.

Every edge reads every event subject live, gap-free (ordered consumers, see events.py), so it
already holds the recent past of every event channel. A client that comes back after a short
disconnect, or ten thousand of them after an edge died, asks for positions the edge has seen:
answering from here costs no JetStream consumer and no round trip, where one consumer per
resubscription hits the server's consumer limit within a reconnect storm.

The guarantee is exact: :meth:`RecentEvents.after` answers only when it holds *every* message of
the subject after the position asked for (it knows since when it has been complete for each
stream and each subject), and None otherwise, so the caller falls back to the stream. Sans I/O.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque


class _Ring:
    """One subject's messages, oldest first; entries before ``start`` are evicted."""

    __slots__ = ("seqs", "payloads", "start")

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.payloads: list[bytes] = []
        self.start = 0


class RecentEvents:
    __slots__ = ("max_bytes", "_rings", "_order", "_bytes", "_complete_after", "_base", "_stream_of")

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._rings: dict[str, _Ring] = {}
        self._order: deque[tuple[str, int]] = deque()  # (subject, size) in arrival order, for eviction
        self._bytes = 0
        self._complete_after: dict[str, int] = {}  # subject -> every message after this seq is held
        self._base: dict[str, int] = {}  # stream -> every message after this seq was received live
        self._stream_of: dict[str, str] = {}

    def start(self, stream: str, last_seq: int) -> None:
        """The live feed of ``stream`` is subscribed and the stream's last sequence was then
        ``last_seq``: every later message will be received. (Ask the stream *after* the feed
        subscribed, so nothing falls between.) Forgets what was held for the stream."""
        self.reset(stream)
        self._base[stream] = last_seq

    def reset(self, stream: str) -> None:
        """Forget ``stream`` (it was recreated: its positions mean something else now)."""
        self._base.pop(stream, None)
        for subject in [s for s, st in self._stream_of.items() if st == stream]:
            ring = self._rings.pop(subject)
            self._bytes -= sum(len(p) for p in ring.payloads[ring.start :])
            self._complete_after.pop(subject, None)
            del self._stream_of[subject]
        self._order = deque(e for e in self._order if e[0] in self._rings)

    def add(self, stream: str, subject: str, seq: int, payload: bytes) -> None:
        """A message received live (in stream order)."""
        if stream not in self._base:
            return
        ring = self._rings.get(subject)
        if ring is None:
            ring = self._rings[subject] = _Ring()
            self._stream_of[subject] = stream
        if len(ring.seqs) > ring.start and seq <= ring.seqs[-1]:
            return  # a redelivery after the feed restarted: already held
        ring.seqs.append(seq)
        ring.payloads.append(payload)
        self._order.append((subject, len(payload)))
        self._bytes += len(payload)
        while self._bytes > self.max_bytes and self._order:
            self._evict()

    def _evict(self) -> None:
        subject, size = self._order.popleft()
        ring = self._rings[subject]
        self._complete_after[subject] = ring.seqs[ring.start]  # held now: everything after it
        ring.payloads[ring.start] = b""
        ring.start += 1
        self._bytes -= size
        if ring.start == len(ring.seqs):
            del self._rings[subject]
            del self._stream_of[subject]
        elif ring.start > 64 and ring.start * 2 > len(ring.seqs):
            del ring.seqs[: ring.start], ring.payloads[: ring.start]
            ring.start = 0

    def after(self, stream: str, subject: str, seq: int) -> list[tuple[int, bytes]] | None:
        """Every message of ``subject`` after position ``seq`` that this edge received, when it
        holds them all; None when it cannot prove that (ask the stream then)."""
        base = self._base.get(stream)
        if base is None or seq < max(base, self._complete_after.get(subject, 0)):
            return None
        ring = self._rings.get(subject)
        if ring is None:
            return []
        i = bisect_right(ring.seqs, seq, ring.start)
        return list(zip(ring.seqs[i:], ring.payloads[i:], strict=True))

    @property
    def bytes(self) -> int:
        return self._bytes
