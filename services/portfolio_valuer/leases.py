"""Shard leases in NATS KV: the asyncio adapter around :mod:`.shards`.

Keys of the ``tm_valuer_shards`` bucket (per-key TTLs; an expired key leaves a delete marker
that every watcher sees at once):

    m.<shards>.<instance>   a member lease: ``{"home": h}``, renewed every ``ttl / 3``
    s.<shards>.<shard>      a shard lease: the holder's instance id, created only when absent,
                            renewed by compare-and-set on its revision

**Guarantees.** While NATS works, a shard is valued by at most one instance (the create and the
compare-and-set decide). A shard whose holder dies is taken over when its lease expires: within
``ttl`` seconds plus the time to see the marker (about a second), the loop's next pass at the
latest (``ttl / 3``). A holder that stops cleanly deletes its leases first, so the takeover is
immediate; one whose home instance returns hands the shard back at its next pass. An instance
that cannot renew a lease (NATS away for longer than ``ttl``) stops valuing that shard as soon
as it learns the lease is gone. A freshly started instance takes only its home shard during its
first ``ttl``, until the others have had time to announce themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from nats.js.errors import APIError, KeyNotFoundError, KeyWrongLastSequenceError

from tickmesh import streams

from .shards import plan

log = logging.getLogger(__name__)

BUCKET = streams.table.bucket("valuer_shards").name
_DELETED = ("DEL", "PURGE")
_WRONG_LAST = (10071, 10164)  # JetStream: the key's last revision is not the one expected
_GONE_HEADERS = ("KV-Operation", "Nats-Marker-Reason")  # a delete, a purge, or an expiry marker


def instance_id() -> str:
    """Unique per process: the host name (the pod's name in Kubernetes) and a random suffix."""
    host = socket.gethostname().replace(".", "-")[:40] or "valuer"
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class ShardLeases:
    """Holds the shard leases this instance is assigned; ``on_take(shard)`` /
    ``on_give_back(shard)`` are called when it starts and stops valuing a shard."""

    def __init__(
        self,
        js: Any,
        *,
        shards: int,
        home: int,
        ttl: float,
        on_take: Callable[[int], None],
        on_give_back: Callable[[int], None],
        me: str | None = None,
    ) -> None:
        self.js = js
        self.shards = shards
        self.home = home
        self.ttl = max(2, int(math.ceil(ttl)))  # per-key TTLs are whole seconds
        self.me = me or instance_id()
        self.on_take = on_take
        self.on_give_back = on_give_back
        self.members: dict[str, int] = {}
        self.owners: dict[int, str] = {}
        self.mine: dict[int, int] = {}  # shard -> revision of our lease
        self.kv: Any = None
        self._wake = asyncio.Event()
        self._ready = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._adopt_after = 0.0  # loop time from which shards other than home may be taken

    def _member_key(self, who: str) -> str:
        return f"m.{self.shards}.{who}"

    def _shard_key(self, shard: int) -> str:
        return f"s.{self.shards}.{shard}"

    async def start(self) -> None:
        """Announce this instance, read the bucket, take what is assigned and free; then keep
        renewing and following in the background."""
        self.kv = await self.js.key_value(BUCKET)
        self._adopt_after = asyncio.get_running_loop().time() + self.ttl
        await self._announce()
        self._tasks.append(asyncio.ensure_future(self._follow()))
        await self._ready.wait()
        await self._pass()
        self._tasks.append(asyncio.ensure_future(self._loop()))

    async def stop(self) -> None:
        """Hand every shard back and leave, so that the others take over at once."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for shard, revision in list(self.mine.items()):
            self._drop(shard)
            with contextlib.suppress(Exception):
                await self.kv.delete(self._shard_key(shard), last=revision)
        with contextlib.suppress(Exception):
            await self.kv.delete(self._member_key(self.me))

    async def _announce(self) -> None:
        await self.js.publish(
            f"$KV.{BUCKET}.{self._member_key(self.me)}", orjson.dumps({"home": self.home}), msg_ttl=self.ttl
        )

    async def _follow(self) -> None:
        watcher = await self.kv.watch(f"*.{self.shards}.*")
        try:
            async for entry in watcher:
                if entry is None:
                    self._ready.set()
                    continue
                kind, _, name = entry.key.split(".", 2)
                gone = entry.operation in _DELETED
                try:
                    if kind == "m":
                        before = self.members.get(name)
                        if gone:
                            self.members.pop(name, None)
                        else:
                            self.members[name] = int(orjson.loads(entry.value)["home"])
                        changed = self.members.get(name) != before
                    elif kind == "s":
                        shard = int(name)
                        before = self.owners.get(shard)
                        if gone:
                            self.owners.pop(shard, None)
                        else:
                            self.owners[shard] = entry.value.decode()
                        if shard in self.mine and (gone or self.owners[shard] != self.me):
                            self._drop(shard)  # our lease lapsed or was taken: stop at once
                        changed = self.owners.get(shard) != before
                    else:
                        continue
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning(
                        "ignored a bad shard-lease entry %s: %s", entry.key, exc, extra={"event": "valuer.bad_lease"}
                    )
                    continue
                if changed:  # renewals change nothing: they must not spin the loop
                    self._wake.set()
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.ttl / 3)
            self._wake.clear()
            try:
                await self._pass()
            except Exception as exc:  # NATS away or electing: the next pass tries again
                log.warning("shard leases: %s", exc, extra={"event": "valuer.lease_failed"})

    async def _pass(self) -> None:
        """Renew our leases, then take and hand back what :func:`shards.plan` says."""
        await self._announce()
        self.members[self.me] = self.home
        for shard, revision in list(self.mine.items()):
            try:
                self.mine[shard] = await self._renew(shard, revision)
            except (KeyWrongLastSequenceError, KeyNotFoundError):
                self._drop(shard)
        adopt = asyncio.get_running_loop().time() >= self._adopt_after
        take, give_back = plan(self.me, self.shards, self.members, self.owners, frozenset(self.mine), adopt=adopt)
        for shard in give_back:
            revision = self.mine.get(shard)
            self._drop(shard)
            if revision is not None:
                with contextlib.suppress(KeyWrongLastSequenceError, KeyNotFoundError):
                    await self.kv.delete(self._shard_key(shard), last=revision)
        for shard in take:
            try:
                self.mine[shard] = await self._create(shard)
            except KeyWrongLastSequenceError:
                continue  # someone else holds it (we will see whom)
            self.owners[shard] = self.me
            log.info(
                "valuing shard %d of %d",
                shard,
                self.shards,
                extra={"event": "valuer.shard_taken", "shard": shard, "home": self.home},
            )
            self.on_take(shard)

    async def _renew(self, shard: int, revision: int) -> int:
        """Compare-and-set of our shard lease with a fresh TTL; its new revision."""
        return await self._cas(shard, revision)

    async def _create(self, shard: int) -> int:
        """Take the shard's lease if nobody holds it: absent, deleted, or expired (the expiry
        marker the server leaves, which the client library's ``create`` takes for a value)."""
        try:
            return await self._cas(shard, 0)
        except KeyWrongLastSequenceError:
            last = await self.js.get_last_msg(f"KV_{BUCKET}", f"$KV.{BUCKET}.{self._shard_key(shard)}")
            if not any(h in (last.headers or {}) for h in _GONE_HEADERS):
                raise
            return await self._cas(shard, last.seq)

    async def _cas(self, shard: int, last: int) -> int:
        try:
            ack = await self.js.publish(
                f"$KV.{BUCKET}.{self._shard_key(shard)}",
                self.me.encode(),
                msg_ttl=self.ttl,
                headers={"Nats-Expected-Last-Subject-Sequence": str(last)},
            )
        except APIError as exc:
            if exc.err_code in _WRONG_LAST:
                raise KeyWrongLastSequenceError(description=exc.description) from None
            raise
        return ack.seq

    def _drop(self, shard: int) -> None:
        if self.mine.pop(shard, None) is not None:
            log.info(
                "no longer valuing shard %d of %d",
                shard,
                self.shards,
                extra={"event": "valuer.shard_released", "shard": shard, "home": self.home},
            )
            self.on_give_back(shard)
