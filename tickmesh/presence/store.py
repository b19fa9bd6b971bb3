"""The asyncio adapter between an edge's presence state and the ``tm_presence`` KV bucket.

What it does, so that the sans-I/O parts (:mod:`.local`, :mod:`.directory`) need no I/O:

* **Lease.** ``e.<edge>`` is written at start and every ``heartbeat`` seconds with a per-message
  TTL of two heartbeats. If the edge dies, NATS expires the key and writes a delete marker, which
  every edge's lease watch sees: that edge's members stop counting everywhere at once. Bound: an
  edge's members disappear at most ``2 × heartbeat`` after its last heartbeat, plus one flush.
* **Writes.** Records from :class:`LocalPresence` go to ``m.<edge>.<topic>.<user>``; ends are
  purges with a TTL on the marker, so nothing accumulates in the bucket.
* **Watches.** One KV watch per topic with local subscribers (``m.*.<topic>.*``), fed into the
  :class:`Directory`; :meth:`watch` returns once the stored records are in, so the first snapshot
  is complete. Deltas are flushed on a timer and handed to ``on_delta``.
* **Purges.** When an edge's lease dies, the live edge with the smallest id purges its records.
  At start, records of edges with no lease (left by a crash while no edge was running) are purged.
* **Reconnects.** After NATS comes back the lease and every local record are written again, in
  case the lease expired meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from nats.js.errors import KeyNotFoundError, NotFoundError

from tickmesh import streams

from .directory import Delta, Directory
from .local import LocalPresence
from .records import (
    BUCKET,
    LEASE_FILTER,
    MEMBERS_FILTER,
    decode_record,
    edge_filter,
    lease_key,
    lease_value,
    parse_lease_key,
    parse_member_key,
    topic_filter,
)

log = logging.getLogger(__name__)

MARKER_TTL = 60  # seconds the marker of an ended record stays in the bucket (watchers see it at once)
_KV_DELETED = ("DEL", "PURGE")


async def ensure_bucket(js: Any) -> Any:
    """The presence bucket, created with every other stream and bucket when missing
    (``contracts/streams.toml``: per-key TTLs allowed, a marker when one expires)."""
    try:
        return await js.key_value(BUCKET)
    except NotFoundError:
        await streams.ensure(js)
        return await js.key_value(BUCKET)


class PresenceStore:
    def __init__(
        self,
        js: Any,
        *,
        edge: str,
        local: LocalPresence,
        directory: Directory,
        heartbeat: float,
        on_delta: Callable[[Delta], None],
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        if heartbeat < 1:
            raise ValueError("presence heartbeat must be at least 1 second (TTLs are whole seconds)")
        self.js = js
        self.edge = edge
        self.local = local
        self.directory = directory
        self.heartbeat = heartbeat
        self.lease_ttl = int(math.ceil(2 * heartbeat))
        self.on_delta = on_delta
        self.kv: Any = None
        self._watches: dict[str, tuple[asyncio.Task, asyncio.Future]] = {}
        self._tasks: list[asyncio.Task] = []
        self._wake_writer = asyncio.Event()
        self._wake_flusher = asyncio.Event()
        self._leases_ready = asyncio.Event()
        self._stopping = False
        self._on_error = on_error

    # -- life ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Bucket, lease, lease watch (waited for), then the background loops and the sweep."""
        self.kv = await ensure_bucket(self.js)
        await self._put_lease(self.lease_ttl)
        self._tasks.append(asyncio.ensure_future(self._follow_leases()))
        await self._leases_ready.wait()
        self._tasks += [
            asyncio.ensure_future(self._heartbeats()),
            asyncio.ensure_future(self._writer()),
            asyncio.ensure_future(self._flusher()),
            asyncio.ensure_future(self._sweep()),
        ]

    async def stop(self, *, grace: float | None = None) -> None:
        """Stop. With ``grace``, the lease is shortened to it (a drain: members who reconnect
        elsewhere within it see no flicker); without, the lease is left to expire."""
        self._stopping = True
        with contextlib.suppress(Exception):
            await self._write_pending()
            if grace is not None:
                await self._put_lease(max(1, int(math.ceil(grace))))
        for task in self._tasks + [w[0] for w in self._watches.values()]:
            task.cancel()
        for task in self._tasks + [w[0] for w in self._watches.values()]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._watches.clear()

    async def reconnected(self) -> None:
        """NATS is back: renew the lease and write every local record again."""
        await self._put_lease(self.lease_ttl)
        writes: dict[str, bytes | None] = dict(self.local.records())
        await self._publish_all(writes)

    # -- writes ----------------------------------------------------------------------------

    def changed(self) -> None:
        """The local state changed: write it (soon, in one batch)."""
        self._wake_writer.set()

    async def _put_lease(self, ttl: int) -> None:
        value = lease_value(self.edge, self.heartbeat, time.time_ns() // 1000)
        await self.js.publish(f"$KV.{BUCKET}.{lease_key(self.edge)}", value, msg_ttl=ttl)

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            try:
                await self._put_lease(self.lease_ttl)
            except Exception as exc:  # NATS away: reconnected() renews it
                log.warning("presence lease renewal failed: %s", exc, extra={"event": "presence.lease_failed"})

    async def _writer(self) -> None:
        while True:
            await self._wake_writer.wait()
            self._wake_writer.clear()
            try:
                await self._write_pending()
            except Exception as exc:
                log.warning("presence write failed: %s", exc, extra={"event": "presence.write_failed"})
                await asyncio.sleep(0.5)

    async def _write_pending(self) -> None:
        writes = self.local.take()
        if writes:
            await self._publish_all(writes)

    async def _publish_all(self, writes: dict[str, bytes | None]) -> None:
        acks = []
        for key, value in writes.items():
            subject = f"$KV.{BUCKET}.{key}"
            if value is None:
                headers = {"KV-Operation": "PURGE", "Nats-Rollup": "sub"}
                acks.append(await self.js.publish_async(subject, b"", headers=headers, msg_ttl=MARKER_TTL))
            else:
                acks.append(await self.js.publish_async(subject, value))
        await asyncio.gather(*acks)

    # -- watches ---------------------------------------------------------------------------

    async def watch(self, topic: str) -> None:
        """Follow ``topic``'s records (once per topic); returns when the stored ones are in."""
        entry = self._watches.get(topic)
        if entry is None:
            self.directory.open(topic)
            ready: asyncio.Future = asyncio.get_running_loop().create_future()
            task = asyncio.ensure_future(self._follow_topic(topic, ready))
            entry = self._watches[topic] = (task, ready)
        await asyncio.shield(entry[1])

    def unwatch(self, topic: str) -> None:
        """Stop following ``topic`` (at once: a later :meth:`watch` starts afresh)."""
        entry = self._watches.pop(topic, None)
        self.directory.close(topic)
        if entry is not None:
            entry[0].cancel()

    async def _follow_topic(self, topic: str, ready: asyncio.Future) -> None:
        watcher = await self.kv.watch(topic_filter(topic))
        try:
            async for entry in watcher:
                if entry is None:
                    # The stored records are in: settle the roster so the first snapshot has them.
                    self.directory.settle(topic)
                    if not ready.done():
                        ready.set_result(None)
                    continue
                try:
                    key = parse_member_key(entry.key)
                    record = None if entry.operation in _KV_DELETED else decode_record(entry.value)
                except ValueError as exc:
                    log.warning(
                        "ignored a bad presence record %s: %s", entry.key, exc, extra={"event": "presence.bad_record"}
                    )
                    continue
                self.directory.record(topic, key.edge, key.user, record)
                self._wake_flusher.set()
        except Exception as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()

    async def _follow_leases(self) -> None:
        watcher = await self.kv.watch(LEASE_FILTER)
        try:
            async for entry in watcher:
                if entry is None:
                    self._leases_ready.set()
                    continue
                try:
                    edge = parse_lease_key(entry.key)
                except ValueError:
                    continue
                alive = entry.operation not in _KV_DELETED
                was_alive = edge in self.directory.alive
                self.directory.lease(edge, alive)
                self._wake_flusher.set()
                if was_alive and not alive:
                    log.info(
                        "presence: edge %s is gone; its members left",
                        edge,
                        extra={"event": "presence.edge_gone", "edge": edge},
                    )
                    if edge == self.edge and not self._stopping:
                        asyncio.ensure_future(self.reconnected())  # our own lease lapsed: renew
                    elif self.directory.alive and min(self.directory.alive) == self.edge:
                        asyncio.ensure_future(self._purge_edge(edge))
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()

    # -- flushing --------------------------------------------------------------------------

    async def _flusher(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = self.directory.next_due()
            if due is None:
                await self._wake_flusher.wait()
                self._wake_flusher.clear()
                continue
            delay = due - loop.time()
            if delay > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake_flusher.wait(), delay)
                self._wake_flusher.clear()
                continue
            self._wake_flusher.clear()
            for delta in self.directory.flush(loop.time()):
                try:
                    self.on_delta(delta)
                except Exception:
                    log.exception("presence delta fan-out failed", extra={"event": "presence.fanout_failed"})

    # -- purges ----------------------------------------------------------------------------

    async def _keys(self, pattern: str) -> list[str]:
        watcher = await self.kv.watch(pattern, meta_only=True, ignore_deletes=True)
        keys: list[str] = []
        try:
            async for entry in watcher:
                if entry is None:
                    break
                keys.append(entry.key)
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()
        return keys

    async def _lease_absent(self, edge: str) -> bool:
        try:
            entry = await self.kv.get(lease_key(edge))
        except KeyNotFoundError:  # also raised for a deleted key
            return True
        return not entry.value  # an expiry marker placed by the server has no value

    async def _purge_edge(self, edge: str) -> int:
        """Purge every record of ``edge``, once its lease is confirmed gone. Returns how many."""
        if not await self._lease_absent(edge):
            return 0
        keys = await self._keys(edge_filter(edge))
        await self._publish_all(dict.fromkeys(keys))
        if keys:
            log.info(
                "presence: purged %d records of edge %s",
                len(keys),
                edge,
                extra={"event": "presence.purged", "edge": edge},
            )
        return len(keys)

    async def _sweep(self) -> None:
        """Purge the records of edges that have no lease (left by crashes)."""
        try:
            edges = set()
            for key in await self._keys(MEMBERS_FILTER):
                with contextlib.suppress(ValueError):
                    edges.add(parse_member_key(key).edge)
            for edge in edges - self.directory.alive:
                await self._purge_edge(edge)
        except Exception as exc:
            log.warning("presence sweep failed: %s", exc, extra={"event": "presence.sweep_failed"})
