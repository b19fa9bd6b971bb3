"""The edge's flush tick: when queued frames leave, and what one batch costs.

Frames leave in ticks. A tick runs as soon as an outbox becomes non-empty, unless the previous
tick was less than ``EDGE_FLUSH_MS`` ago: then it waits for that moment, and everything queued
meanwhile leaves together as one WebSocket message per connection. So a quiet edge sends each
message at once (the leading edge), and a busy one batches (the trailing edge). The pause after
a tick also grows with the tick itself (:data:`PACE`): when writing to every socket costs more
than the interval (a system call per connection), ticks space out and batches grow, so flushing
never takes all of the edge's time (NATS is still read in between) and messages queue in
batches rather than behind one another. Connections whose pending frames are the very same objects (a
hot channel's subscribers) share one encoded batch per tick.

How a batch leaves depends on the transport. A transport with a writer of its own (the plain
Quart WebSocket, SSE, polling) is woken through ``Connection.wake``. A transport that writes
without a task (``Connection.writer`` set; see ``wsengine.py``) is written to by the flusher
itself, in the tick, with no await per connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tickmesh import metrics

from . import wsframes

if TYPE_CHECKING:
    from .connection import Connection


# After a tick, the next one waits at least EDGE_FLUSH_MS and at least this share of the tick's own
# duration. Measured with 10,000 clients (a shared channel's message is 10,000 writes, ~100 ms):
# 1.0 (flushing at most half the time) gave p99 557 ms beside nats-ws's 201 ms; 0.25 (at most
# about 80%) gave 270 ms beside 328 ms, everything delivered in both. Fan-out to 1,000 clients is
# untouched: its ticks are shorter than the interval.
PACE = 0.25


class WriterStats:
    """What the writers send, counted in plain integers on the hot path and handed to the
    Prometheus registry once a second by the edge's clock (a labelled counter costs ~1 µs per
    call, which at hundreds of thousands of frames a second would be a core's worth of work).
    Latency and queue depth are observed for one batch in :attr:`SAMPLE_EVERY`."""

    SAMPLE_EVERY = 16
    __slots__ = ("frames", "bytes", "conflated", "_n")

    def __init__(self) -> None:
        self.frames = [0, 0]  # [event, state]
        self.bytes = [0, 0]
        self.conflated = 0
        self._n = 0

    def sample(self) -> bool:
        self._n += 1
        return self._n % self.SAMPLE_EVERY == 0

    def sent(self, state: bool, frames: int, nbytes: int) -> None:
        self.frames[state] += frames
        self.bytes[state] += nbytes

    def flush(self) -> None:
        for index, cls in ((0, "event"), (1, "state")):
            if self.frames[index]:
                metrics.messages_out(cls, self.frames[index], self.bytes[index])
                self.frames[index] = self.bytes[index] = 0
        if self.conflated:
            metrics.conflated(self.conflated)
            self.conflated = 0


class Payload:
    """One batch's bytes, shared by every connection whose pending frames were the same objects
    within a tick, with each wire form built at most once: the plain payload, the WebSocket
    frame per opcode and compression window, and the text the Quart path sends."""

    __slots__ = ("data", "_forms")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._forms: dict[Any, Any] | None = None

    def _form(self, key: Any, build: Callable[[], Any]) -> Any:
        forms = self._forms
        if forms is None:
            forms = self._forms = {}
        value = forms.get(key)
        if value is None:
            value = forms[key] = build()
        return value

    def framed(self, opcode: int, deflate: wsframes.Deflate | None) -> bytes:
        """The whole WebSocket frame, for a transport written to directly."""
        if deflate is None:
            return self._form(opcode, lambda: wsframes.frame(opcode, self.data))
        bits = deflate.server_bits
        return self._form((opcode, bits), lambda: wsframes.frame(opcode, wsframes.compress(self.data, bits), rsv1=True))

    def text(self) -> str:
        return self._form("text", self.data.decode)


class Batch:
    """What one connection sends in one tick. ``ts`` is set when this batch's end-to-end latency
    is to be observed once it is written."""

    __slots__ = ("payload", "frames", "state", "ts")

    def __init__(self, payload: Payload, frames: int, state: bool, ts: int | None) -> None:
        self.payload = payload
        self.frames = frames
        self.state = state
        self.ts = ts

    @property
    def data(self) -> bytes:
        return self.payload.data

    def framed(self, opcode: int, deflate: wsframes.Deflate | None) -> bytes:
        return self.payload.framed(opcode, deflate)

    def written(self) -> None:
        """Call once the batch is handed to the socket."""
        if self.ts is not None:
            metrics.observe_latency("state" if self.state else "event", self.ts)


class Flusher:
    def __init__(self, flush_ms: float) -> None:
        self.interval = flush_ms / 1000.0
        self.stats = WriterStats()
        self._dirty: list[Connection] = []
        self._cache: dict[tuple[bytes, ...], Payload] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._next = 0.0  # loop time before which no tick may start
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = False

    @property
    def batching(self) -> bool:
        return self.interval > 0

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = False

    def stop(self) -> None:
        self._stopped = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def on_ready(self, conn: Connection) -> Callable[[], None]:
        """The outbox callback for ``conn``: its frames leave at the next tick (or at once
        without batching)."""
        if not self.batching:
            return lambda: self.flush_now(conn)
        dirty = self._dirty

        def ready() -> None:
            dirty.append(conn)
            if self._handle is None:
                self._schedule()

        return ready

    def mark(self, conn: Connection) -> None:
        """Write ``conn``'s queued frames at the next tick (its transport can take them again)."""
        if self.batching:
            self._dirty.append(conn)
            if self._handle is None:
                self._schedule()
        else:
            self.flush_now(conn)

    def closing(self, conn: Connection) -> None:
        """``conn``'s core decided to close: flush what is queued, then close, now."""
        self.flush_now(conn)

    def flush_now(self, conn: Connection) -> None:
        writer = conn.writer
        if writer is None:
            conn.wake.set()
        else:
            writer(conn)

    def _schedule(self) -> None:
        loop = self._loop
        if loop is None or self._stopped:
            return
        self._handle = loop.call_at(max(loop.time(), self._next), self._tick)

    def _tick(self) -> None:
        loop = self._loop
        assert loop is not None
        # The handle stays set while flushing, so frames queued meanwhile (a writer's callback)
        # do not schedule a tick of their own: the one below takes them, paced like any other.
        started = loop.time()
        try:
            self.flush()
        finally:
            ended = loop.time()
            self._next = ended + max(self.interval, PACE * (ended - started))
            self._handle = None
            if self._dirty:
                self._schedule()

    def flush(self) -> None:
        """One tick: every connection with queued frames writes (or is woken to write)."""
        dirty = self._dirty[:]
        self._dirty.clear()
        self._cache.clear()
        for conn in dirty:
            writer = conn.writer
            if writer is None:
                conn.wake.set()
            else:
                writer(conn)

    def take(self, conn: Connection) -> Batch | None:
        """Drain ``conn``'s outbox into one batch (shared with every connection whose pending
        frames are the same objects within this tick), counting what leaves."""
        outbox = conn.outbox
        stats = self.stats
        sampled = stats.sample()
        if sampled:
            metrics.queue_depth(len(outbox), outbox.pending_bytes)
        ts, state = outbox.oldest_ts, outbox.oldest_state
        conflated = outbox.conflated
        pending = outbox.drain()
        if not pending:
            return None
        if self.batching:
            key = tuple(pending)
            payload = self._cache.get(key)
            if payload is None:
                payload = self._cache[key] = Payload(conn.codec.batch(pending))
        else:
            payload = Payload(conn.codec.batch(pending))
        stats.sent(state, len(pending), len(payload.data))
        if conflated:
            stats.conflated += conflated
            outbox.conflated = 0
        return Batch(payload, len(pending), state, ts if sampled else None)
