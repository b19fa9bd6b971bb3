"""Presence at the edge: joins and leaves of this edge's connections, and ``presence:<topic>``
subscriptions, over :mod:`tickmesh.presence` (PROTOCOL.md, "Presence").

* A join is rate-limited per user, checked (watch-list topics: membership, from the stored list)
  and recorded in :class:`LocalPresence`; the store writes it to NATS in the background.
* A closed connection's memberships end after the grace period (``EDGE_PRESENCE_GRACE_S``).
* A subscription follows the topic's records (one KV watch per topic on this edge, shared by
  every local subscriber), gets the roster's snapshot, then its deltas through the hub: built
  once, the same bytes for every subscriber.
* Watch-list topics depend on the list's access: the gate ends them when it is revoked.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from typing import TYPE_CHECKING, Any

import orjson

from tickmesh.contracts.channels import TopicKind, parse_topic, presence_subject, topic_of
from tickmesh.contracts.codes import ErrorCode
from tickmesh.presence.directory import Delta, Directory
from tickmesh.presence.local import LocalPresence
from tickmesh.presence.store import PresenceStore

from .hub import Hub
from .limits import TokenBucket
from .session import Join, Leave, Subscribe
from .settings import EdgeSettings
from .watchlists import NOT_FOUND, WatchlistGate

if TYPE_CHECKING:
    from .connection import Connection

log = logging.getLogger(__name__)


def _now_us() -> int:
    return time.time_ns() // 1000


class EdgePresence:
    def __init__(self, settings: EdgeSettings, hub: Hub, gate: WatchlistGate) -> None:
        self.settings = settings
        self.hub = hub
        self.gate = gate
        self.edge_id = f"edge-{secrets.token_hex(5)}"
        self.local = LocalPresence(self.edge_id, grace=settings.presence_grace)
        self.directory = Directory(limit=settings.presence_list_limit, flush_interval=settings.presence_flush_ms / 1000)
        self.store: PresenceStore | None = None
        self._limiters: dict[str, TokenBucket] = {}
        self._pending: dict[str, int] = {}  # topics with an attach waiting for their watch
        self._tasks: set[asyncio.Task] = set()

    # -- life ------------------------------------------------------------------------------

    async def start(self, js: Any) -> None:
        self.store = PresenceStore(
            js,
            edge=self.edge_id,
            local=self.local,
            directory=self.directory,
            heartbeat=self.settings.presence_heartbeat,
            on_delta=self._fan_out,
        )
        await self.store.start()
        log.info("presence started as %s", self.edge_id, extra={"event": "presence.started", "edge": self.edge_id})

    async def stop(self, *, draining: bool) -> None:
        """Draining: members keep the grace period to reconnect elsewhere without flicker."""
        if self.store is not None:
            await self.store.stop(grace=self.settings.presence_grace if draining else None)

    def reconnected(self) -> None:
        if self.store is not None:
            self._spawn(self.store.reconnected())

    def tick(self, now: float) -> None:
        """Grace periods, and forgetting idle rate limiters (called once a second)."""
        self.local.tick(now)
        if self.store is not None:
            self.store.changed()
        refill = self.settings.presence_burst / self.settings.presence_rate + 1.0
        for user, bucket in list(self._limiters.items()):
            if now - bucket.updated > refill:
                del self._limiters[user]

    def _fan_out(self, delta: Delta) -> None:
        self.hub.publish(presence_subject(delta.topic), delta.version, delta.payload, time.monotonic())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- joins -----------------------------------------------------------------------------

    def _limited(self, user: str, now: float) -> float:
        bucket = self._limiters.get(user)
        if bucket is None:
            bucket = self._limiters[user] = TokenBucket(self.settings.presence_rate, self.settings.presence_burst, now)
        return bucket.take(now)

    async def join(self, conn: Connection, action: Join) -> None:
        session, identity = conn.session, conn.session.identity
        assert identity is not None and conn.user is not None
        wait = self._limited(conn.user, time.time())
        if wait > 0:
            session.join_failed(
                action.rid,
                action.topic,
                int(ErrorCode.RATE_LIMITED),
                f"too many presence joins and updates: retry in {math.ceil(wait * 1000)} ms",
                again=action.again,
            )
            conn.flush_session()
            return
        if action.watchlist is not None and not await self.gate.allowed(conn.user, action.watchlist):
            session.join_failed(action.rid, action.topic, int(ErrorCode.FORBIDDEN), NOT_FOUND, again=action.again)
            conn.flush_session()
            return
        if action.topic not in session.joined or session.closed is not None:
            return  # left (or closed) while the membership was checked
        if action.watchlist is not None:
            self.gate.depend(
                action.watchlist,
                ("join", conn.conn_id, action.topic),
                conn.user,
                lambda code, reason: self._revoked(conn, action.topic, code, reason),
            )
        self.local.join(conn.conn_id, conn.user, identity.display_name, action.topic, action.data, _now_us())
        if self.store is not None:
            self.store.changed()
        session.join_done(action.rid, action.topic, action.again)
        conn.flush_session()

    def leave(self, conn: Connection, action: Leave) -> None:
        self._end(conn, action.topic)
        if action.answer:
            conn.push_frame({"op": "ok", "id": action.rid})

    def _end(self, conn: Connection, topic: str) -> None:
        self.local.leave(conn.conn_id, topic)
        wl = _watchlist_of(topic)
        if wl is not None:
            self.gate.forget(wl, ("join", conn.conn_id, topic))
        if self.store is not None:
            self.store.changed()

    def _revoked(self, conn: Connection, topic: str, code: int, reason: str) -> None:
        self.local.leave(conn.conn_id, topic)
        if self.store is not None:
            self.store.changed()
        conn.session.end_membership(topic, code, reason)
        conn.flush_session()

    def closed(self, conn: Connection) -> None:
        """The connection is gone: its memberships end after the grace period."""
        for topic in self.local.topics_of(conn.conn_id):
            wl = _watchlist_of(topic)
            if wl is not None:
                self.gate.forget(wl, ("join", conn.conn_id, topic))
        self.local.closed(conn.conn_id, time.time())
        if self.store is not None:
            self.store.changed()

    # -- presence:<topic> subscriptions ----------------------------------------------------

    async def attach(self, conn: Connection, sub: Subscribe) -> None:
        topic = topic_of(sub.subject)
        if sub.watchlist is not None and not await self.gate.allowed(conn.user, sub.watchlist):
            conn.subscribe_failed(sub, int(ErrorCode.FORBIDDEN), NOT_FOUND)
            return
        if self.store is None:
            conn.subscribe_failed(sub, int(ErrorCode.UNAVAILABLE), "presence unavailable; retry")
            return
        self._pending[topic] = self._pending.get(topic, 0) + 1
        try:
            await self.store.watch(topic)
        except Exception as exc:
            log.warning("presence watch of %s failed: %s", topic, exc, extra={"event": "presence.watch_failed"})
            conn.subscribe_failed(sub, int(ErrorCode.UNAVAILABLE), "presence unavailable; retry")
            return
        finally:
            left = self._pending[topic] - 1
            if left:
                self._pending[topic] = left
            else:
                del self._pending[topic]
        if not conn.wants(sub.name) or (
            sub.watchlist is not None and self.gate.permits(conn.user, sub.watchlist) is False
        ):
            if not conn.wants(sub.name):
                self._release_if_unused(topic)
                return
            conn.subscribe_failed(sub, int(ErrorCode.FORBIDDEN), NOT_FOUND)
            self._release_if_unused(topic)
            return
        roster = self.directory.rosters.get(topic)
        if roster is None:  # the watch ended meanwhile (released by the last subscriber)
            conn.subscribe_failed(sub, int(ErrorCode.UNAVAILABLE), "presence unavailable; retry")
            return
        if sub.watchlist is not None:
            outbox = conn.outbox
            assert conn.user is not None  # subscribing needs an authenticated connection
            self.gate.depend(
                sub.watchlist,
                (outbox, sub.name),
                conn.user,
                lambda code, reason: conn.end_subscription(sub.name, code, reason),
            )
        conn.subscribed(sub, {})
        self.hub.add(sub.subject, sub.name, conn.outbox, conflate=False)
        version, payload = roster.snapshot()
        conn.outbox.push(conn.codec.msg(sub.name, version, payload, lambda: orjson.loads(payload)))

    def detached(self, subject: str, name: str, outbox: Any, last: bool) -> None:
        """A presence subscription ended; ``last``: it was the topic's last one here."""
        topic = topic_of(subject)
        wl = _watchlist_of(topic)
        if wl is not None:
            self.gate.forget(wl, (outbox, name))
        if last:
            self._release_if_unused(topic)

    def _release_if_unused(self, topic: str) -> None:
        if self.store is not None and topic not in self._pending and not self.hub.subscribers(presence_subject(topic)):
            self.store.unwatch(topic)


def _watchlist_of(topic: str) -> str | None:
    t = parse_topic(topic)
    return t.arg if t.kind is TopicKind.WATCHLIST else None
