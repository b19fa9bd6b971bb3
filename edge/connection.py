"""One client connection, whatever its transport: the session core plus its outbox.

A transport adapter (WebSocket, SSE, polling) feeds client frames to :meth:`Connection.feed`
and drains :attr:`Connection.outbox` when :attr:`Connection.wake` is set; everything else (the
core's actions: verifying tokens, subscribing, recovering, running commands, closing) is carried
out here, once, for all transports.
"""

from __future__ import annotations

import asyncio
import logging
import os
import itertools
import time
from typing import TYPE_CHECKING, Any

from tickmesh import metrics
from tickmesh.contracts.codes import CloseCode, ErrorCode

from tickmesh.contracts.channels import is_state_subject

from .frames import Codec
from .identity import AuthFailure, Identity
from .outbox import Outbox
from .session import Authenticate, Close, RunCommand, Session, Subscribe, Unsubscribe

if TYPE_CHECKING:
    from .state import EdgeState

log = logging.getLogger(__name__)

_ids = itertools.count(1)
_prefix = os.urandom(3).hex()


def _is_state(subject: str) -> bool:
    return is_state_subject(subject)


_ERROR_NAMES = {int(c): c.name.lower() for c in ErrorCode}


def _error_name(code: Any) -> str:
    return _ERROR_NAMES.get(code, "other") if isinstance(code, int) else "other"


def auth_reason(failure: AuthFailure) -> str:
    """A bounded metrics label for why a token was refused."""
    if failure.close_code == CloseCode.TOKEN_EXPIRED:
        return "expired"
    text = failure.reason
    for needle, label in (("signature", "bad_signature"), ("audience", "wrong_audience"), ("issuer", "wrong_issuer"),
                          ("not valid yet", "not_yet_valid"), ("revoked", "revoked"), ("missing", "missing")):
        if needle in text:
            return label
    return "malformed"


def new_conn_id() -> str:
    """Unique across edges and restarts in practice: a random per-process prefix and a counter."""
    return f"{_prefix}-{next(_ids):x}"


class Connection:
    def __init__(self, state: EdgeState, *, codec: Codec, peer: str, transport: str,
                 identity: Identity | None = None) -> None:
        self.state = state
        self.peer = peer
        self.transport = transport
        self.codec = codec
        self.opened = time.monotonic()
        self.wake = asyncio.Event()
        self.closing: Close | None = None
        self.user: str | None = None
        settings = state.settings
        self.session = Session(conn_id=new_conn_id(), now=time.time(), limits=state.session_limits,
                               codec=codec, channel_exists=state.channel_exists,
                               client_heartbeats=transport == "ws", on_error=self._on_error)
        self._metrics: metrics.Connection | None = None
        self.outbox = Outbox(max_frames=settings.outbox_max_frames, max_bytes=settings.outbox_max_bytes,
                             on_ready=state.on_ready(self), on_overflow=self._on_overflow, on_defer=self._on_defer,
                             codec=codec.index, conflate_after=settings.conflate_after)
        self._subscribed: dict[str, str] = {}  # channel name -> subject, as registered in the hub
        self._tasks: set[asyncio.Task] = set()
        self._defer_handle: asyncio.TimerHandle | None = None
        self._identity_at_connect = identity

    @property
    def conn_id(self) -> str:
        return self.session.conn_id

    async def start(self) -> None:
        """Register with the edge; authenticate at once when the transport carried a token."""
        self.state.register(self)
        self._metrics = metrics.connection_opened(self.transport, "msgpack" if self.codec.index else "json")
        if self._identity_at_connect is not None:
            await self._authenticated(self._identity_at_connect, rid=None)

    # -- input from the transport ----------------------------------------------------------

    async def feed(self, data: bytes | str) -> None:
        metrics.messages_in("control", 1, len(data))
        self.session.receive_frame(data, time.time())
        await self.apply(self.session.take())

    def tick(self, now: float) -> None:
        """Called by the edge's clock about once a second."""
        self.session.tick(now)
        outputs = self.session.take()
        if outputs:
            self._spawn(self.apply(outputs))

    def close(self, code: int, reason: str) -> None:
        """Close from the edge's side (revocation, drain, limits)."""
        self.session.close(code, reason)
        self._spawn(self.apply(self.session.take()))

    def push_frame(self, obj: dict[str, Any]) -> None:
        self.outbox.push(self.codec.encode(obj))

    # -- carrying out the core's actions ---------------------------------------------------

    async def apply(self, outputs: list) -> None:
        for out in outputs:
            if isinstance(out, bytes):
                if not self.outbox.push(out):
                    return
            elif isinstance(out, Subscribe):
                self._subscribed[out.name] = out.subject
                if out.audited_owner is not None:
                    log.info("privileged read of another user's channel", extra={
                        "event": "audit.cross_user_read", "conn_id": self.conn_id, "user": self.user,
                        "owner": out.audited_owner, "channel": out.name})
                metrics.subscription_added("state" if out.state else "event")
                await self.state.attach(self, out)
            elif isinstance(out, Unsubscribe):
                subject = self._subscribed.pop(out.name, None)
                if subject is not None:
                    metrics.subscription_removed("state" if _is_state(subject) else "event")
                    await self.state.detach(out.subject, out.name, self.outbox)
                self.outbox.forget(out.name)
                if out.answer:
                    self.push_frame({"op": "ok", "id": out.rid})
            elif isinstance(out, Authenticate):
                await self._authenticate(out)
            elif isinstance(out, RunCommand):
                self._spawn(self._command(out))
            elif isinstance(out, Close):
                if out.code == CloseCode.AUTH_TIMEOUT:
                    metrics.auth_failed("timeout")
                self.closing = out
                self.wake.set()

    async def _authenticate(self, action: Authenticate) -> None:
        result = await self.state.verify(action.token)
        if action.refresh:
            self.session.auth_result(result, time.time(), rid=action.rid, refresh=True)
            await self.apply(self.session.take())
            return
        if isinstance(result, AuthFailure):
            metrics.auth_failed(auth_reason(result))
            log.info("authentication failed: %s", result.reason, extra={
                "event": "auth.failed", "conn_id": self.conn_id, "code": result.close_code})
            self.session.auth_result(result, time.time(), rid=action.rid, refresh=False)
            await self.apply(self.session.take())
            return
        await self._authenticated(result, action.rid)

    async def _authenticated(self, identity: Identity, rid: Any) -> None:
        refusal = self.state.admit(self, identity)
        if refusal is not None:
            if refusal.close_code == CloseCode.CONNECTION_LIMIT:
                metrics.rate_limited("connection")
            else:
                metrics.auth_failed("revoked")
        result: Identity | AuthFailure = refusal or identity
        if refusal is None:
            self.user = identity.user
        self.session.auth_result(result, time.time(), rid=rid, refresh=False,
                                 rate_limiter=self.state.limiter_for(identity.user))
        await self.apply(self.session.take())

    async def _command(self, action: RunCommand) -> None:
        started = time.monotonic()
        reply = await self.state.run_command(action)
        result = "ok" if reply["op"] == "ok" else _error_name(reply.get("code"))
        metrics.command_done(action.name, result, time.monotonic() - started)
        if self.closing is None:
            self.outbox.push(self.codec.encode({"op": reply["op"], "id": action.rid, **reply}))

    # -- outbox callbacks ------------------------------------------------------------------

    def _on_error(self, code: int) -> None:
        metrics.error_sent(code)
        if code == ErrorCode.RATE_LIMITED:
            metrics.rate_limited("command")

    def _on_overflow(self) -> None:
        metrics.slow_consumer("event")
        log.warning("slow consumer disconnected", extra={"event": "conn.slow_consumer", "conn_id": self.conn_id,
                                                          "user": self.user})
        self.closing = Close(int(CloseCode.SLOW_CONSUMER), "slow consumer: resume from your last position")
        self.wake.set()

    def _on_defer(self, due: float) -> None:
        if self._defer_handle is None:
            loop = asyncio.get_running_loop()
            delay = max(0.0, due - time.monotonic())
            self._defer_handle = loop.call_later(delay, self._release_deferred)

    def _release_deferred(self) -> None:
        self._defer_handle = None
        next_due = self.outbox.release_due(time.monotonic())
        if next_due is not None:
            self._on_defer(next_due)

    # -- lifecycle -------------------------------------------------------------------------

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def release(self) -> None:
        """Undo everything this connection holds at the edge. Safe to call once, at the end."""
        if self._defer_handle is not None:
            self._defer_handle.cancel()
        for task in list(self._tasks):
            task.cancel()
        subscribed, self._subscribed = self._subscribed, {}
        for name, subject in subscribed.items():
            metrics.subscription_removed("state" if _is_state(subject) else "event")
            await self.state.detach(subject, name, self.outbox)
        self.state.unregister(self)
        if self._metrics is not None:
            self._metrics.closed(self.closing.code if self.closing else 1006)
        log.info("connection closed", extra={
            "event": "conn.closed", "conn_id": self.conn_id, "user": self.user, "transport": self.transport,
            "code": self.closing.code if self.closing else None,
            "duration_s": round(time.monotonic() - self.opened, 3)})
