"""Event channels: live delivery with stream positions, and recovery from a position.

Event messages (trades, notifications, alerts, announcements, news) are persisted in JetStream
by their publishers. Each edge reads them through one *ordered* push consumer per event subject
pattern (which the client library restarts from the last stream sequence after any gap or
reconnect, so the live feed itself never skips), and hands them to the hub with their stream
sequence as ``seq``. Event rates are low next to prices, so every edge reading all of them is
cheap, and any edge can serve any user's recovery.

Recovery (:meth:`EventFeeds.recover`) replays, for one subject, every stored message after the
client's position. The subscriber is registered with a :class:`Recorder` *before* the replay
starts, so a message stored after the replay's end arrives live into the recorder; the seam is
then cut by position, giving every message exactly once and in order.

A replay comes from the edge's memory of what it received live (:mod:`recent`) whenever that
holds every message after the position, which is the case for nearly every reconnect; otherwise
from the stream, through a pull consumer made for it and deleted after it, at most
``EDGE_REPLAY_CONCURRENCY`` at a time (a reconnect storm waits its turn instead of hitting the
server's consumer limit). A replay from the stream is complete or fails (the client gets 501
and retries): it never ends short and claims to be whole.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import orjson
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from tickmesh import metrics, tracing
from tickmesh.contracts import streams as stream_table

from .hub import Hub
from .recent import RecentEvents

log = logging.getLogger(__name__)

# Event subject patterns and the stream that stores them (contracts/streams.toml).
FEEDS: tuple[tuple[str, str], ...] = stream_table.event_feeds()
REPLAY_BATCH = 512
FETCH_TIMEOUT = 2.0  # seconds one fetch of a replay may take
FETCH_ATTEMPTS = 3  # fetches that may time out before a replay fails (the client retries)
MAX_REPLAY = 100_000  # a client further behind gets a partial replay and recovered=false
# The server sends the ordered consumers a heartbeat this often; two missed (its NATS node lost)
# and the client library recreates the consumer from the next stream sequence. The library's
# default (5 s, so 10 s to notice, and as long again when the recreation falls in a leader
# election) held live events back for 12 to 16 s in the cluster failover tests.
HEARTBEAT_S = 1.0


def stream_for(subject: str) -> str:
    return stream_table.stream_for_subject(subject).name


@dataclass
class Recovery:
    """The outcome of a recovery, as told to the client in the ``ok`` of ``sub``."""

    epoch: str
    seq: int  # the position the subscription now continues from
    recovered: bool
    reason: str | None = None
    first_seq: int | None = None
    messages: list[tuple[int, bytes]] = field(default_factory=list)

    def reply_fields(self) -> dict:
        out = {"epoch": self.epoch, "seq": self.seq, "recovered": self.recovered, "replayed": len(self.messages)}
        if self.reason:
            out["reason"] = self.reason
        if self.first_seq is not None:
            out["first_seq"] = self.first_seq
        return out


class ReplayIncomplete(Exception):
    """The stream did not deliver every message of a replay in time."""


class EventFeeds:
    def __init__(self, hub: Hub, *, cache_bytes: int = 64 << 20, replay_concurrency: int = 16) -> None:
        self.hub = hub
        self.js: JetStreamContext | None = None
        self.recent = RecentEvents(cache_bytes)
        self._subs: list = []
        self._fed: dict[str, int] = {}  # stream -> last sequence its live feed delivered
        self._info_inflight: dict[str, asyncio.Future] = {}
        self._epochs: dict[str, str] = {}
        self._replays = asyncio.Semaphore(replay_concurrency)

    async def start(self, js: JetStreamContext) -> None:
        self.js = js
        for pattern, stream in FEEDS:
            self._subs.append(
                await js.subscribe(
                    pattern,
                    stream=stream,
                    ordered_consumer=True,
                    idle_heartbeat=HEARTBEAT_S,
                    deliver_policy=DeliverPolicy.NEW,
                    cb=self._on_msg,
                )
            )
        for stream in dict.fromkeys(stream for _, stream in FEEDS):
            # Asked after the feeds subscribed: every message after this position is received.
            epoch, _, last = await self.epoch_and_tail(stream)
            self.recent.start(stream, last)
            self._epochs[stream] = epoch

    async def _on_msg(self, msg: Msg) -> None:
        metrics.messages_in("event", 1, len(msg.data))
        meta = msg.metadata
        seq = meta.sequence.stream
        stream = meta.stream
        self.recent.add(stream, msg.subject, seq, msg.data)
        if seq > self._fed.get(stream, 0):
            self._fed[stream] = seq
        headers = msg.headers
        if headers and tracing.TRACEPARENT in headers:
            with tracing.receive("edge.fanout", headers, attributes={"messaging.destination.name": msg.subject}):
                self.hub.publish(msg.subject, seq, msg.data, time.monotonic())
        else:
            self.hub.publish(msg.subject, seq, msg.data, time.monotonic())

    async def epoch_and_tail(self, stream: str) -> tuple[str, int, int]:
        """The stream's epoch (its creation time in µs), first and last sequence. Concurrent
        callers share one request (a storm of resubscriptions asks a few times, not once per
        client); nothing is reused once answered, so a purge is seen at once."""
        inflight = self._info_inflight.get(stream)
        if inflight is None:
            inflight = self._info_inflight[stream] = asyncio.ensure_future(self._stream_info(stream))
            inflight.add_done_callback(lambda _: self._info_inflight.pop(stream, None))
        info = await asyncio.shield(inflight)
        if self._epochs.get(stream, info[0]) != info[0]:
            log.warning(
                "stream %s was recreated; forgetting its recent events", stream, extra={"event": "stream.recreated"}
            )
            self._epochs[stream] = info[0]
            self.recent.reset(stream)
        return info

    async def _stream_info(self, stream: str) -> tuple[str, int, int]:
        if self.js is None:  # the edge serves before its first NATS connection is made
            raise ReplayIncomplete("not connected to NATS yet")
        info = await self.js.stream_info(stream)
        created = info.created
        epoch = str(int(created.timestamp() * 1_000_000)) if created else "0"
        return epoch, info.state.first_seq, info.state.last_seq

    async def recover(self, subject: str, since: tuple[str, int] | None, *, replay_all: bool = False) -> Recovery:
        """Messages of ``subject`` after ``since`` (``None``: start at the tail; ``replay_all``:
        everything retained). Never raises for a bad position: the result says what happened.
        Raises :class:`ReplayIncomplete` (or a NATS error) when the stream cannot be read."""
        stream = stream_for(subject)
        epoch, first, last = await self.epoch_and_tail(stream)
        # Everything the feed delivered before the recorder was registered is in the stream up
        # to here; anything later reaches the recorder.
        last = max(last, self._fed.get(stream, 0))
        if since is None:
            start = max(first - 1, 0) if replay_all else last
            rec = Recovery(epoch, start, True)
        elif since[0] != epoch:
            return Recovery(epoch, last, False, "epoch_changed")
        elif since[1] > last:
            return Recovery(epoch, last, False, "position_unknown")
        else:
            start = since[1]
            rec = Recovery(epoch, start, True)
        if since is not None and start + 1 < first:
            # Gone from the stream (expired or purged): what the edge still remembers of it is
            # not served either; the stream is the record.
            rec.recovered, rec.reason, rec.first_seq = False, "position_expired", first
            start = first - 1
        held = self.recent.after(stream, subject, start)
        if held is not None:
            metrics.recovery("from_memory")
            rec.messages = held
        elif start < last:
            rec.messages = await self._replay(stream, subject, start + 1, last)
        if len(rec.messages) >= MAX_REPLAY:
            rec.messages = rec.messages[:MAX_REPLAY]
            rec.recovered, rec.reason = False, "too_far_behind"
        if rec.messages:
            rec.seq = rec.messages[-1][0]
        return rec

    async def _replay(self, stream: str, subject: str, start: int, last: int) -> list[tuple[int, bytes]]:
        """Every stored message of ``subject`` from ``start`` to ``last``, from the stream."""
        assert self.js is not None
        # One cheap probe first: most resubscribes have missed nothing on their own subject.
        try:
            probe = await self.js.get_msg(stream, seq=start, subject=subject, next=True, direct=True)
        except NotFoundError:
            return []
        if probe.seq is None or probe.seq > last:
            return []
        async with self._replays:
            return await self._fetch(stream, subject, probe.seq, last)

    async def _fetch(self, stream: str, subject: str, start: int, last: int) -> list[tuple[int, bytes]]:
        assert self.js is not None
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=30.0,
            mem_storage=True,
            max_ack_pending=-1,
            filter_subject=subject,
        )
        info = await self.js.add_consumer(stream, config)
        out: list[tuple[int, bytes]] = []
        try:
            psub = await self.js.pull_subscribe_bind(durable=info.name, stream=stream)
            try:
                timeouts = 0
                while len(out) < MAX_REPLAY:
                    try:
                        msgs = await psub.fetch(REPLAY_BATCH, timeout=FETCH_TIMEOUT)
                    except TimeoutError:
                        timeouts += 1
                        if timeouts >= FETCH_ATTEMPTS:
                            raise ReplayIncomplete(
                                f"{subject}: {len(out)} messages read, stopped before {last}"
                            ) from None
                        continue
                    for m in msgs:
                        seq = m.metadata.sequence.stream
                        if seq > last:
                            return out
                        out.append((seq, m.data))
                        if seq == last or m.metadata.num_pending == 0:
                            return out
            finally:
                try:
                    await psub.unsubscribe()
                except Exception:  # closing anyway
                    pass
        finally:
            try:
                await self.js.delete_consumer(stream, info.name)
            except Exception:  # it expires by itself after inactive_threshold
                pass
        return out


def unexpired(messages: list[tuple[int, bytes]], now_us: int) -> list[tuple[int, bytes]]:
    """Announcements still in force: no ``ends_at``, or ``ends_at`` in the future."""
    out = []
    for seq, payload in messages:
        try:
            ends = orjson.loads(payload).get("ends_at")
        except (orjson.JSONDecodeError, AttributeError):
            continue
        if ends is None or (isinstance(ends, int) and ends > now_us):
            out.append((seq, payload))
    return out
