"""Subscribing a connection to a channel: the upstream side, the snapshot or the replay, and
the seam to live delivery.

* **State channels** (prices, portfolio): the upstream NATS subscription is made live first,
  then the ``ok``, the snapshot (the edge's cache, or the stream's last message for the
  subject) and live updates go to the outbox with no await in between the last three, so no
  update can slip between the snapshot and the first live message.
* **Event channels** (trades, notifications, alerts, announcements, news): a recorder stands in
  for the outbox while the stored messages after the client's position are replayed; the seam
  between replayed and live messages is then cut by stream position, so every message arrives
  once and in order.

The session core builds the ``ok``/``err`` answers (:meth:`Connection.subscribed`,
:meth:`Connection.subscribe_failed`); this module decides when they may go.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from nats.js.errors import NotFoundError

from tickmesh import metrics
from tickmesh.contracts import streams as stream_table
from tickmesh.contracts.channels import (
    Kind,
    flags_subject,
    is_presence_subject,
    is_state_subject,
    public_subject,
    watchlist_of,
)
from tickmesh.contracts.codes import ErrorCode
from tickmesh.contracts.messages import SEQ_HEADER

from .events import EventFeeds, unexpired
from .flagfeed import FlagFeed
from .hub import Hub
from .outbox import Outbox, Recorder
from .pricehistory import recent_ticks
from .session import Subscribe
from .upstream import Upstream
from .watchlists import NOT_FOUND, WatchlistGate, members_of

if TYPE_CHECKING:
    from .connection import Connection
    from .presence import EdgePresence

log = logging.getLogger(__name__)

_SKIPPED = object()  # the hub holds the snapshot, or knows the stream has nothing newer
_UNAVAILABLE = object()  # the stream could not be asked

ANNOUNCEMENTS = public_subject(Kind.ANNOUNCEMENTS)
FLAGS_PREFIX = flags_subject("x")[:-1]  # tm.flags.eval.


class Subscriptions:
    def __init__(self, hub: Hub, upstream: Upstream, events: EventFeeds, flags: FlagFeed) -> None:
        self.hub = hub
        self.flags = flags
        self.upstream = upstream
        self.events = events
        self._pending: dict[str, int] = {}  # subjects with an attach waiting on upstream
        self._fetching: dict[str, asyncio.Future] = {}  # snapshot requests in flight
        self.presence: EdgePresence | None = None  # presence:<topic> (edge/presence.py)
        self.gate: WatchlistGate | None = None  # watch-list access (edge/watchlists.py)

    async def attach(self, conn: Connection, sub: Subscribe) -> None:
        if self.attach_now(conn, sub):
            return
        if is_presence_subject(sub.subject):
            assert self.presence is not None
            await self.presence.attach(conn, sub)
        elif sub.state:
            await self._attach_state(conn, sub)
        else:
            await self._attach_event(conn, sub)

    def attach_now(self, conn: Connection, sub: Subscribe) -> bool:
        """Attach without waiting when nothing needs asking: the flags channel, or a state
        subject whose upstream subscription is live and whose snapshot the hub holds (or knows
        the stream lacks) - the common case of many clients on one hot channel. False when the
        caller must ``await attach``."""
        if sub.subject.startswith(FLAGS_PREFIX):
            self.flags.attach(conn, sub)  # evaluated here, per identity: nothing upstream
            return True
        subject = sub.subject
        if (
            not sub.state
            or sub.history is not None
            or subject in self._pending
            or not self.upstream.is_live(subject)
            or self.hub.needs_snapshot(subject)
        ):
            return False
        self._go_live(conn, sub, _SKIPPED, [])
        return True

    def detach(self, subject: str, name: str, outbox: Outbox) -> None:
        """Stop delivering at once; release the upstream subscription (in the background) when
        nobody here wants the subject any more."""
        if subject.startswith(FLAGS_PREFIX):
            self.flags.detach(outbox)
            return
        last = self.hub.remove(subject, name, outbox)
        if is_presence_subject(subject):
            assert self.presence is not None
            self.presence.detached(subject, name, outbox, last)
            return
        wl_id = watchlist_of(subject)
        if wl_id is not None and self.gate is not None:
            self.gate.forget(wl_id, (outbox, name))
        if last and is_state_subject(subject) and subject not in self._pending:
            self.upstream.release_soon(subject)

    async def _attach_state(self, conn: Connection, sub: Subscribe) -> None:
        subject = sub.subject
        self._pending[subject] = self._pending.get(subject, 0) + 1
        history: list[tuple[int, bytes]] = []
        try:
            await self.upstream.ensure(subject)
            fetched = await self._snapshot_once(subject) if self.hub.needs_snapshot(subject) else _SKIPPED
            if sub.history is not None:
                history = await self._recent(conn, sub)
        finally:
            left = self._pending[subject] - 1
            if left:
                self._pending[subject] = left
            else:
                del self._pending[subject]
        if not conn.wants(sub.name):
            return
        if sub.history is not None:
            await self._send_history(conn, sub, history)
            if not conn.wants(sub.name):
                return
        self._go_live(conn, sub, fetched, history)

    def _go_live(self, conn: Connection, sub: Subscribe, fetched: Any, history: list[tuple[int, bytes]]) -> None:
        """``ok`` (unless history sent it), the snapshot, then live messages: no await in
        between, so no update can slip between the snapshot and the first live message."""
        subject = sub.subject
        if sub.watchlist is not None and not self._admit_watchlist(
            conn, sub, fetched if isinstance(fetched, tuple) else None
        ):
            return
        outbox = conn.outbox
        if sub.history is None:
            conn.subscribed(sub, {})
        sink = conn.sink(sub)  # the outbox, or the causal gate of the user's own portfolio
        self.hub.add(subject, sub.name, sink, conflate=True)
        if fetched is not _SKIPPED and fetched is not _UNAVAILABLE:
            self.hub.seed(subject, fetched)
        snap = self.hub.snapshot(subject)
        if snap is not None and history and snap[0] <= history[-1][0]:
            snap = None  # the last historic tick was the current value: it is not sent twice
        if snap is not None:
            metrics.recovery("snapshot")
            seq, payload = snap
            sink.push_state(
                sub.name, conn.codec.msg(sub.name, seq, payload, lambda: orjson.loads(payload)), time.monotonic()
            )
        if sub.max_hz:
            outbox.throttle(sub.name, sub.max_hz)

    async def _recent(self, conn: Connection, sub: Subscribe) -> list[tuple[int, bytes]]:
        """The last ``sub.history`` ticks of the subject, oldest first (none when unavailable:
        the subscription then starts like any other, from the snapshot)."""
        nc = self.upstream.nc
        if nc is None or not nc.is_connected:
            return []
        try:
            return await recent_ticks(nc.jetstream(), sub.subject, sub.history or 0)
        except Exception as exc:
            log.warning("price history unavailable for %s: %s", sub.name, exc, extra={"event": "history.failed"})
            return []

    async def _send_history(self, conn: Connection, sub: Subscribe, history: list[tuple[int, bytes]]) -> None:
        """``ok`` with ``replayed``, then the ticks oldest first, in chunks the writer drains in
        between (a thousand ticks never overflow the outbox). Not conflated: a chart wants them
        all. Live ticks meanwhile reach the edge's snapshot, sent right after."""
        conn.subscribed(sub, {"replayed": len(history)})
        outbox = conn.outbox
        chunk = max(1, outbox.max_frames // 4)
        for start in range(0, len(history), chunk):
            while len(outbox) > outbox.max_frames // 2 and conn.closing is None:
                await asyncio.sleep(0.005)
            if not conn.wants(sub.name):
                return
            for seq, payload in history[start : start + chunk]:
                outbox.push(conn.codec.msg(sub.name, seq, payload, _parser(payload)))

    def _snapshot_once(self, subject: str) -> Any:
        """One stream request per subject at a time, shared by concurrent subscribers."""
        inflight = self._fetching.get(subject)
        if inflight is None:
            inflight = self._fetching[subject] = asyncio.ensure_future(self._fetch_snapshot(subject))
            inflight.add_done_callback(lambda _: self._fetching.pop(subject, None))
        return asyncio.shield(inflight)

    def _admit_watchlist(self, conn: Connection, sub: Subscribe, fetched: tuple[int, bytes] | None) -> bool:
        """Membership of the list, checked on the newest revision this edge has, and the
        subscription registered with the gate in the same step (no await in between), so a
        revocation arriving later always finds it."""
        assert self.gate is not None and sub.watchlist is not None
        held = self.hub.snapshot(sub.subject)
        newest = fetched if held is None or (fetched is not None and fetched[0] > held[0]) else held
        if newest is None or conn.user not in members_of(newest[1]):
            conn.subscribe_failed(sub, int(ErrorCode.FORBIDDEN), NOT_FOUND)
            if not self.hub.subscribers(sub.subject) and sub.subject not in self._pending:
                self.upstream.release_soon(sub.subject)
            return False
        outbox = conn.outbox
        self.gate.depend(
            sub.watchlist,
            (outbox, sub.name),
            conn.user,
            lambda code, reason: conn.end_subscription(sub.name, code, reason),
        )
        return True

    async def _fetch_snapshot(self, subject: str) -> Any:
        """The stream's last message for ``subject`` as ``(seq, payload)``, None when it has
        none, or ``_UNAVAILABLE`` when it could not be asked (live updates will follow)."""
        wl_id = watchlist_of(subject)
        if wl_id is not None and self.gate is not None:
            return await self.gate.fetch(wl_id)  # a list's bucket holds its snapshot
        nc = self.upstream.nc
        if nc is None or not nc.is_connected:
            return _UNAVAILABLE
        try:
            stream = stream_table.stream_for_subject(subject).name
            msg = await nc.jetstream().get_last_msg(stream, subject, direct=True)
        except NotFoundError:
            return None
        except Exception:  # JetStream unavailable
            return _UNAVAILABLE
        seq = msg.headers.get(SEQ_HEADER) if msg.headers else None
        if msg.data is None or seq is None or not seq.isdigit():
            return None
        return int(seq), msg.data

    async def _attach_event(self, conn: Connection, sub: Subscribe) -> None:
        recorder = Recorder(conn.codec.index)
        self.hub.add(sub.subject, sub.name, recorder, conflate=False)
        sink = conn.sink(sub)  # the outbox, or the audit tap of the user's own trades
        live = False
        try:
            live = await self._replay(conn, sub, recorder, sink)
        finally:
            # Whatever ended the replay (done, refused, the connection gone, a cancellation),
            # the recorder must not stay in the hub collecting frames for nobody.
            if live:
                self.hub.replace(sub.subject, sub.name, recorder, sink)
            else:
                self.hub.remove(sub.subject, sub.name, recorder)

    async def _replay(self, conn: Connection, sub: Subscribe, recorder: Recorder, sink: Any) -> bool:
        """Replay to the outbox and cut the seam; True when the outbox may take over from the
        recorder."""
        try:
            announcements = sub.since is None and sub.subject == ANNOUNCEMENTS
            replay_all = announcements or sub.history is not None
            rec = await self.events.recover(sub.subject, sub.since, replay_all=replay_all)
        except Exception as exc:
            log.warning(
                "recovery failed for %s: %s %s", sub.name, type(exc).__name__, exc, extra={"event": "recovery.failed"}
            )
            metrics.recovery("unavailable")
            conn.subscribe_failed(sub, int(ErrorCode.UNAVAILABLE), "history unavailable; retry")
            return False
        if not conn.wants(sub.name):
            return False
        metrics.recovery("replayed" if rec.recovered else "gap", len(rec.messages))
        messages = rec.messages
        if announcements:
            messages = rec.messages = unexpired(messages, int(time.time() * 1_000_000))
        if sub.history is not None:
            messages = rec.messages = messages[-sub.history :]
        outbox = conn.outbox
        conn.subscribed(sub, rec.reply_fields())
        if sink is not outbox:  # the trades tap: positions up to the first replayed one never come
            sink.live(rec.epoch, messages[0][0] - 1 if messages else rec.seq)
        last = rec.seq
        # Replay no faster than the client reads: whenever half the outbox is in use (frames or
        # bytes), wait for the writer to drain it, instead of overflowing it. Live messages keep
        # arriving in the recorder meanwhile.
        half_frames, half_bytes = outbox.max_frames // 2, outbox.max_bytes // 2
        for seq, payload in messages:
            while len(outbox) >= half_frames or outbox.pending_bytes >= half_bytes:
                if not conn.wants(sub.name):
                    return False
                await asyncio.sleep(0.005)
            if not conn.wants(sub.name):
                return False
            sink.push_event(conn.codec.msg(sub.name, seq, payload, _parser(payload)), seq)
        for seq, frame in recorder.frames:
            if seq > last:
                sink.push_event(frame, seq)
                last = seq
        return True


def _parser(payload: bytes) -> Callable[[], Any]:
    """The payload parsed on demand (only the MessagePack codec needs it parsed)."""
    return lambda: orjson.loads(payload)
