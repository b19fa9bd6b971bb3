"""The edge's NATS side: one connection, one subscription per subject, fed into the hub.

Each message is checked once (its payload must be one JSON value) and handed to
:meth:`Hub.publish`, which frames it once for all local subscribers. The position of a message in
its channel comes from the publisher's ``Tm-Seq`` header; a message without one gets the edge's
own per-subject counter, so ``seq`` still increases for the client.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from tickmesh import metrics, tracing
from tickmesh.contracts.channels import is_state_subject
from tickmesh.contracts.messages import SEQ_HEADER
from tickmesh.natsconn import StatusCallback, connect

from .hub import Hub

log = logging.getLogger(__name__)


class Upstream:
    def __init__(
        self, hub: Hub, *, url: str, name: str = "tickmesh-edge", on_status: StatusCallback | None = None
    ) -> None:
        self.hub = hub
        self.url = url
        self.name = name
        self.nc: NATS | None = None
        self._subs: dict[str, tuple[Subscription, asyncio.Future]] = {}
        self.flush_timeout = 2.0
        self._local_seq: dict[str, int] = {}
        self._on_status = on_status
        self._unsubscribing: set[asyncio.Task] = set()
        # (subject prefix, check): a check sees each message of its subjects before the hub
        # does and may stop it (watch-list access is enforced there: edge/watchlists.py).
        self._intercepts: list[tuple[str, Callable[[str, Any, bytes], bool]]] = []

    def intercept(self, prefix: str, check: Callable[[str, Any, bytes], bool]) -> None:
        self._intercepts.append((prefix, check))

    def ensure_soon(self, subject: str) -> None:
        """:meth:`ensure` in the background (for subscribers that need not wait for it)."""
        task = asyncio.ensure_future(self.ensure(subject))
        self._unsubscribing.add(task)
        task.add_done_callback(self._unsubscribing.discard)

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    async def connect(self) -> None:
        """Connect to NATS, retrying until it answers; then subscribe every subject that local
        clients asked for meanwhile. Later reconnects restore subscriptions by themselves."""
        self.nc = await connect(self.url, name=self.name, on_status=self._on_status)
        for subject in self.hub.subjects():
            if is_state_subject(subject):
                await self.ensure(subject)

    async def close(self) -> None:
        if self.nc is not None and not self.nc.is_closed:
            try:
                await self.nc.drain()
            except Exception:  # closing anyway
                await self.nc.close()

    def is_live(self, subject: str) -> bool:
        """Whether the server has this edge's subscription to ``subject`` (its round trip done)."""
        entry = self._subs.get(subject)
        return entry is not None and entry[1].done() and self.connected

    async def ensure(self, subject: str) -> None:
        """Make sure this edge is subscribed to ``subject`` and return once the server has the
        subscription (a PING/PONG round trip), so that anything published afterwards arrives.

        Concurrent callers for one subject share the same round trip. While NATS is away this
        returns at once; the subscription is made (or restored) on connect.
        """
        if self.nc is None:
            return
        ready = self._subs.get(subject)
        if ready is None:
            sub = await self.nc.subscribe(subject, cb=self._on_msg)
            ready = self._subs[subject] = (sub, asyncio.ensure_future(self._flush()))
            metrics.upstream_subjects(len(self._subs))
        await asyncio.shield(ready[1])

    async def _flush(self) -> None:
        assert self.nc is not None
        try:
            await self.nc.flush(timeout=self.flush_timeout)  # type: ignore[arg-type]  # seconds, as a float
        except Exception as exc:  # disconnected: the library restores the subscription later
            log.debug("flush after subscribe failed: %s", exc)

    def release_soon(self, subject: str) -> None:
        """Drop this edge's subscription to ``subject`` (its last local subscriber left). The
        subject is forgotten at once, so a new subscriber subscribes afresh; the UNSUB itself
        goes out in the background. A message still in flight on the old subscription is
        harmless: the hub drops state messages it has already delivered."""
        entry = self._subs.pop(subject, None)
        self._local_seq.pop(subject, None)
        metrics.upstream_subjects(len(self._subs))
        if entry is not None:
            task = asyncio.ensure_future(self._unsubscribe(subject, entry[0]))
            self._unsubscribing.add(task)
            task.add_done_callback(self._unsubscribing.discard)

    async def _unsubscribe(self, subject: str, sub: Subscription) -> None:
        try:
            await sub.unsubscribe()
        except Exception as exc:  # connection closing: nothing left to undo
            log.debug("unsubscribe %s failed: %s", subject, exc)

    async def _on_msg(self, msg: Msg) -> None:
        payload = msg.data
        metrics.messages_in("state", 1, len(payload))
        for prefix, check in self._intercepts:
            if msg.subject.startswith(prefix) and not check(msg.subject, msg.headers, payload):
                return
        try:
            body = orjson.loads(payload)
        except orjson.JSONDecodeError:
            metrics.dropped("bad_payload")
            log.warning("dropped a non-JSON payload on %s", msg.subject, extra={"event": "upstream.bad_payload"})
            return
        subject = msg.subject
        seq = None
        headers = msg.headers
        if headers:
            raw = headers.get(SEQ_HEADER)
            if raw is not None and raw.isdigit():
                seq = int(raw)
        if seq is None:
            seq = self._local_seq.get(subject, 0) + 1
            self._local_seq[subject] = seq
        ts = body.get("ts") if type(body) is dict else None
        if headers and tracing.TRACEPARENT in headers:
            with tracing.receive("edge.fanout", headers, attributes={"messaging.destination.name": subject}):
                self.hub.publish(subject, seq, payload, time.monotonic(), ts)
        else:
            self.hub.publish(subject, seq, payload, time.monotonic(), ts)
