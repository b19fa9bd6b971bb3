"""Each connection's bounded send queue.

A slow client can only hurt itself: frames wait here, not in a shared queue. While a client keeps
up, every state frame (prices, portfolio) is queued, so frames due together travel in one batch;
once ``conflate_after`` frames are pending (the client lags), a newer state frame replaces the
pending one of its channel in place, so a slow reader gets the latest value, never a stale
backlog; a channel subscribed with
``max_hz`` is also throttled here (the latest frame waits for its slot, and the last one of a
burst always goes out). Event and control frames are kept in order up to ``max_frames``; past
that the outbox overflows and the connection must be closed (the client resumes from its last
position), because dropping an event silently is not allowed.
"""

from __future__ import annotations

from collections.abc import Callable


class Outbox:
    __slots__ = (
        "_frames",
        "_state_slots",
        "_bytes",
        "max_frames",
        "max_bytes",
        "overflowed",
        "conflated",
        "_on_ready",
        "_on_overflow",
        "_min_gap",
        "_last_queued",
        "_deferred",
        "_on_defer",
        "codec",
        "oldest_ts",
        "oldest_state",
        "conflate_after",
        "on_drain",
    )

    def __init__(
        self,
        *,
        max_frames: int = 1024,
        max_bytes: int = 4 * 1024 * 1024,
        on_ready: Callable[[], None] | None = None,
        on_overflow: Callable[[], None] | None = None,
        on_defer: Callable[[float], None] | None = None,
        codec: int = 0,
        conflate_after: int = 64,
    ) -> None:
        self._frames: list[bytes] = []
        self._state_slots: dict[str, int] = {}
        self._bytes = 0
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.overflowed = False
        self.conflated = 0
        self.conflate_after = conflate_after
        self._on_ready = on_ready
        self._on_overflow = on_overflow
        self._on_defer = on_defer
        # Throttling (max_hz) state, made on first use: most connections never throttle.
        self._min_gap: dict[str, float] | None = None
        self._last_queued: dict[str, float] | None = None
        self._deferred: dict[str, tuple[bytes, float]] | None = None
        self.codec = codec
        # Provider timestamp (µs) and class of the oldest pending frame that carries one, for
        # the end-to-end latency measured when the batch is handed to the socket.
        self.oldest_ts: int | None = None
        self.oldest_state = False
        # Called after every drain, once the frames are on their way to the transport: the
        # connection's own trades tap (ownchannels.py) counts its positions as delivered then.
        self.on_drain: Callable[[], None] | None = None

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def pending_bytes(self) -> int:
        return self._bytes

    def _overflow(self) -> bool:
        if not self.overflowed:
            self.overflowed = True
            if self._on_overflow is not None:
                self._on_overflow()
        return False

    def push(self, frame: bytes) -> bool:
        """Queue an event or control frame. Returns ``False`` (and marks the outbox overflowed,
        calling ``on_overflow`` once) when the bounds are exceeded; the frame is not queued."""
        if self.overflowed:
            return False
        if len(self._frames) >= self.max_frames or self._bytes + len(frame) > self.max_bytes:
            return self._overflow()
        self._frames.append(frame)
        self._bytes += len(frame)
        if len(self._frames) == 1 and self._on_ready is not None:
            self._on_ready()
        return True

    def push_event(self, frame: bytes, seq: int, ts: int | None = None) -> bool:
        """An event channel's frame (``seq`` matters only to recorders, see ``Recorder``)."""
        if ts is not None and self.oldest_ts is None and type(ts) is int:
            self.oldest_ts, self.oldest_state = ts, False
        return self.push(frame)

    def throttle(self, key: str, max_hz: float | None) -> None:
        """Limit channel ``key`` to ``max_hz`` frames per second (``None`` removes the limit)."""
        if max_hz:
            if self._min_gap is None:
                self._min_gap, self._last_queued, self._deferred = {}, {}, {}
            self._min_gap[key] = 1.0 / max_hz
        else:
            self.forget(key)

    def push_state(self, key: str, frame: bytes, now: float = 0.0, ts: int | None = None) -> bool:
        """Queue a state frame for channel ``key``, replacing a pending one for the same key."""
        if ts is not None and self.oldest_ts is None and type(ts) is int:
            self.oldest_ts, self.oldest_state = ts, True
        gap = self._min_gap.get(key) if self._min_gap is not None else None
        if gap is not None:
            assert self._last_queued is not None and self._deferred is not None
            due = self._last_queued.get(key, -1e18) + gap
            if now < due:
                first = key not in self._deferred
                self._deferred[key] = (frame, due)
                if first and self._on_defer is not None:
                    self._on_defer(due)
                return True
            self._last_queued[key] = now
        slot = self._state_slots.get(key)
        if slot is not None and len(self._frames) >= self.conflate_after:
            old = self._frames[slot]
            self._frames[slot] = frame
            self._bytes += len(frame) - len(old)
            self.conflated += 1
            return True
        if self.overflowed:
            return False
        if self._bytes + len(frame) > self.max_bytes:
            return self._overflow()
        self._state_slots[key] = len(self._frames)
        self._frames.append(frame)
        self._bytes += len(frame)
        if len(self._frames) == 1 and self._on_ready is not None:
            self._on_ready()
        return True

    def release_due(self, now: float) -> float | None:
        """Queue throttled frames whose slot has come; returns the next due time, if any."""
        next_due = None
        if self._deferred is None:
            return None
        for key, (frame, due) in list(self._deferred.items()):
            if due <= now:
                del self._deferred[key]
                self.push_state(key, frame, now)
            elif next_due is None or due < next_due:
                next_due = due
        return next_due

    def forget(self, key: str) -> None:
        """Drop every trace of channel ``key`` (it was unsubscribed); queued frames stay queued."""
        if self._min_gap is not None:
            assert self._last_queued is not None and self._deferred is not None
            self._deferred.pop(key, None)
            self._last_queued.pop(key, None)
            self._min_gap.pop(key, None)

    def unhook(self) -> None:
        """Drop the callbacks (they refer to the connection): the connection is gone."""
        self._on_ready = self._on_overflow = self._on_defer = self.on_drain = None

    def drain(self) -> list[bytes]:
        """Take every pending frame, oldest first."""
        frames = self._frames
        self._frames = []
        self._state_slots.clear()
        self._bytes = 0
        self.oldest_ts = None
        if self.on_drain is not None:
            self.on_drain()
        return frames


class Recorder:
    """Stands in for an outbox while an event channel is being recovered: it records live frames
    with their positions so that the seam between replayed and live messages can be cut exactly
    (every position once, in order)."""

    __slots__ = ("frames", "codec")

    def __init__(self, codec: int) -> None:
        self.frames: list[tuple[int, bytes]] = []
        self.codec = codec

    def push_event(self, frame: bytes, seq: int, ts: int | None = None) -> bool:
        self.frames.append((seq, frame))
        return True

    def push_state(self, key: str, frame: bytes, now: float = 0.0, ts: int | None = None) -> bool:
        self.frames.append((0, frame))
        return True
