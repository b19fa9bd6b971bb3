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

log = logging.getLogger(__name__)

# Event subject patterns and the stream that stores them (contracts/streams.toml).
FEEDS: tuple[tuple[str, str], ...] = stream_table.event_feeds()
REPLAY_BATCH = 512
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


class EventFeeds:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.js: JetStreamContext | None = None
        self._subs: list = []

    async def start(self, js: JetStreamContext) -> None:
        self.js = js
        for pattern, stream in FEEDS:
            self._subs.append(await js.subscribe(pattern, stream=stream, ordered_consumer=True,
                                                 idle_heartbeat=HEARTBEAT_S, deliver_policy=DeliverPolicy.NEW,
                                                 cb=self._on_msg))

    async def _on_msg(self, msg: Msg) -> None:
        metrics.messages_in("event", 1, len(msg.data))
        headers = msg.headers
        if headers and tracing.TRACEPARENT in headers:
            with tracing.receive("edge.fanout", headers, attributes={"messaging.destination.name": msg.subject}):
                self.hub.publish(msg.subject, msg.metadata.sequence.stream, msg.data, time.monotonic())
        else:
            self.hub.publish(msg.subject, msg.metadata.sequence.stream, msg.data, time.monotonic())

    async def epoch_and_tail(self, stream: str) -> tuple[str, int, int]:
        """The stream's epoch (its creation time in µs), first and last sequence."""
        assert self.js is not None
        info = await self.js.stream_info(stream)
        created = info.created
        epoch = str(int(created.timestamp() * 1_000_000)) if created else "0"
        return epoch, info.state.first_seq, info.state.last_seq

    async def recover(self, subject: str, since: tuple[str, int] | None, *, replay_all: bool = False) -> Recovery:
        """Messages of ``subject`` after ``since`` (``None``: start at the tail; ``replay_all``:
        everything retained). Never raises for a bad position: the result says what happened."""
        stream = stream_for(subject)
        epoch, first, last = await self.epoch_and_tail(stream)
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
            if start + 1 < first:
                rec.recovered, rec.reason, rec.first_seq = False, "position_expired", first
        if start < last:
            rec.messages = await self._replay(stream, subject, start + 1, last)
            if len(rec.messages) >= MAX_REPLAY:
                rec.recovered, rec.reason = False, "too_far_behind"
            if rec.messages:
                rec.seq = rec.messages[-1][0]
        return rec

    async def _replay(self, stream: str, subject: str, start: int, last: int) -> list[tuple[int, bytes]]:
        assert self.js is not None
        # One cheap probe first: most resubscribes have missed nothing on their own subject.
        try:
            probe = await self.js.get_msg(stream, seq=start, subject=subject, next=True, direct=True)
        except NotFoundError:
            return []
        if probe.seq is None or probe.seq > last:
            return []
        out: list[tuple[int, bytes]] = []
        config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=probe.seq,
                                ack_policy=AckPolicy.NONE, inactive_threshold=30.0, mem_storage=True,
                                max_ack_pending=-1)
        psub = await self.js.pull_subscribe(subject, stream=stream, config=config)
        try:
            while len(out) < MAX_REPLAY:
                try:
                    msgs = await psub.fetch(REPLAY_BATCH, timeout=2.0)
                except asyncio.TimeoutError:
                    break
                done = False
                for m in msgs:
                    seq = m.metadata.sequence.stream
                    if seq > last:
                        done = True
                        break
                    out.append((seq, m.data))
                    if m.metadata.num_pending == 0 or seq == last:
                        done = True
                if done:
                    break
        finally:
            try:
                await psub.unsubscribe()
            except Exception:  # the consumer expires by itself (inactive_threshold)
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
