"""Running client commands: NATS request/reply to the owning service, once per key.

A command with a ``key`` is idempotent across retries, reconnects, edges and transports: the
first edge to see ``(user, key)`` creates a ``pending`` marker in the ``tm_cmd_replies`` bucket
(an atomic create, so two edges cannot both run it), runs the command and stores the reply; a
retry finds the reply and returns it, or waits for the marker to turn into one. The bucket's TTL
(``EDGE_COMMAND_DEDUPE_S``) is the documented dedupe window. If the service does not answer in
time, the marker is removed, the client gets 502 and may retry with the same key; services also
see the key as ``cmd_id`` and can dedupe on it themselves.

While JetStream cannot answer (a NATS node lost, its streams electing a new leader: a few
seconds), a command gets 501 and the client retries with the same key; once a command has run,
its reply (or the marker's removal) is stored with retries through such an election, so a retry
is never left waiting on a marker nobody will complete.

Only a key's first run counts against the user's command rate limit: a retry (what a client
does after a timeout) gets the stored reply even when the user's bucket is empty.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
from nats.aio.client import Client
from nats.errors import ConnectionReconnectingError, NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import KeyWrongLastSequenceError, NoStreamResponseError, NotFoundError, ServiceUnavailableError
from nats.js.kv import KeyValue

from tickmesh import streams, tracing
from tickmesh.contracts.channels import encode_token
from tickmesh.contracts.codes import ErrorCode
from tickmesh.contracts.commands import decode_reply

from .limits import Limiter
from .session import RunCommand, rate_limited_reason

log = logging.getLogger(__name__)

_PENDING = b"pending"
STALE_MARGIN_S = 2.0  # a pending marker older than the command's timeout plus this is a lost edge's
# What JetStream answers while a stream (here the bucket) has no leader or the connection is
# moving to another server: worth a retry, not an internal error.
_TRANSIENT = (
    NoRespondersError,
    NoStreamResponseError,
    NatsTimeout,
    asyncio.TimeoutError,
    ServiceUnavailableError,
    ConnectionReconnectingError,
)
STORE_RETRY_S = 15.0  # longer than a JetStream leader election


def _err(code: int, reason: str) -> dict[str, Any]:
    return {"op": "err", "code": int(code), "reason": reason}


class CommandRunner:
    def __init__(self) -> None:
        self.nc: Client | None = None
        self.kv: KeyValue | None = None

    async def start(self, nc: Client) -> None:
        self.nc = nc
        self.kv = await nc.jetstream().key_value(streams.COMMAND_REPLIES_BUCKET)

    async def run(self, action: RunCommand, limiter: Limiter) -> dict[str, Any]:
        """The reply frame (without ``id``) for ``action``. Never raises. ``limiter`` is the
        user's command bucket, charged here for a keyed command's first run only (the session
        core charged unkeyed ones already)."""
        if self.nc is None or not self.nc.is_connected:
            return _err(ErrorCode.UNAVAILABLE, "service temporarily unavailable; retry")
        try:
            if action.key is None:
                return await self._request(action)
            if self.kv is None:
                return _err(ErrorCode.UNAVAILABLE, "service temporarily unavailable; retry")
            return await self._once(action, limiter)
        except _TRANSIENT as exc:
            log.warning(
                "command %s: JetStream unavailable (%s)",
                action.name,
                type(exc).__name__,
                extra={"event": "command.unavailable", "command": action.name},
            )
            return _err(ErrorCode.UNAVAILABLE, "service temporarily unavailable; retry with the same key")
        except Exception:
            log.exception("command failed", extra={"event": "command.error", "command": action.name})
            return _err(ErrorCode.INTERNAL, "internal error")

    async def _request(self, action: RunCommand) -> dict[str, Any]:
        assert self.nc is not None
        try:
            with tracing.command(action.name, attributes={"tickmesh.command": action.name}) as tr:
                msg = await self.nc.request(
                    action.subject, action.payload, timeout=action.timeout, headers=tr.inject(None)
                )
        except NoRespondersError:
            return _err(ErrorCode.UNAVAILABLE, f"no service answers {action.name}; retry later")
        except (TimeoutError, NatsTimeout):
            return _err(ErrorCode.TIMEOUT, f"{action.name} timed out; retry with the same key")
        reply = decode_reply(msg.data)
        if reply.ok:
            return {"op": "ok", "data": reply.data}
        err = _err(reply.code, reply.reason)
        if reply.data:  # what the client needs to act on the error (610: the current watch-list)
            err["data"] = reply.data
        return err

    async def _once(self, action: RunCommand, limiter: Limiter) -> dict[str, Any]:
        assert self.kv is not None and action.key is not None
        key = f"{encode_token(action.user)}.{encode_token(action.name)}.{encode_token(action.key)}"
        wait = limiter.peek(time.time())
        if wait > 0:
            # Out of tokens: only a replay of a known key may still be answered.
            try:
                await self.kv.get(key)
            except NotFoundError:  # never run, or deleted after a failed first run
                return _err(ErrorCode.RATE_LIMITED, rate_limited_reason(wait))
            return await self._wait_for(action, key, limiter)
        try:
            revision = await self.kv.create(key, _pending())
        except KeyWrongLastSequenceError:
            return await self._wait_for(action, key, limiter)
        return await self._run_owned(action, key, revision, limiter)

    async def _run_owned(self, action: RunCommand, key: str, revision: int, limiter: Limiter) -> dict[str, Any]:
        """Run a command whose ``pending`` marker (at ``revision``) this edge holds."""
        assert self.kv is not None
        wait = limiter.take(time.time())
        if wait > 0:  # another connection of the user took the last token meanwhile
            await self.kv.delete(key, last=revision)
            return _err(ErrorCode.RATE_LIMITED, rate_limited_reason(wait))
        reply = await self._request(action)
        if reply.get("code") in (ErrorCode.TIMEOUT, ErrorCode.UNAVAILABLE):
            await self._retrying(lambda: self.kv.delete(key, last=revision))
        else:
            await self._retrying(lambda: self.kv.put(key, orjson.dumps(reply)))
        return reply

    @staticmethod
    async def _retrying(op) -> None:
        """``op()`` until it succeeds, through transient JetStream errors, for STORE_RETRY_S."""
        deadline = asyncio.get_running_loop().time() + STORE_RETRY_S
        while True:
            try:
                await op()
                return
            except _TRANSIENT:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.2)

    async def _wait_for(self, action: RunCommand, key: str, limiter: Limiter) -> dict[str, Any]:
        """The reply of a command another attempt runs (or ran). An attempt that has been
        ``pending`` longer than the command's timeout plus :data:`STALE_MARGIN_S` belongs to an
        edge that died mid-command: this attempt takes the marker over (compare-and-set, so only
        one does) and runs the command itself; services see the same ``cmd_id`` and dedupe."""
        assert self.kv is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + action.timeout + 2.0
        while True:
            try:
                entry = await self.kv.get(key)
            except NotFoundError:
                return _err(ErrorCode.TIMEOUT, "the first attempt of this command failed; retry")
            value = entry.value or b""
            if not value.startswith(_PENDING):
                return orjson.loads(value)
            if _pending_age(value) > action.timeout + STALE_MARGIN_S and entry.revision is not None:
                try:
                    revision = await self.kv.update(key, _pending(), last=entry.revision)
                except KeyWrongLastSequenceError:
                    continue  # another attempt took it over first
                log.warning(
                    "took over a command left pending by a lost edge",
                    extra={"event": "command.takeover", "command": action.name},
                )
                return await self._run_owned(action, key, revision, limiter)
            if loop.time() > deadline:
                return _err(ErrorCode.TIMEOUT, "the first attempt of this command is still running; retry")
            await asyncio.sleep(0.05)


def _pending() -> bytes:
    """A marker that a command runs, stamped with when it started (Unix ms)."""
    return _PENDING + b":%d" % int(time.time() * 1000)


def _pending_age(value: bytes) -> float:
    """Seconds since a pending marker was stamped (0 for an unstamped one)."""
    _, _, stamp = value.partition(b":")
    return time.time() - int(stamp) / 1000 if stamp.isdigit() else 0.0
