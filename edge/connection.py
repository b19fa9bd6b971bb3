"""One client connection, whatever its transport: the session core plus its outbox.

A transport adapter (WebSocket, SSE, polling) feeds client frames to :meth:`Connection.feed`
and drains :attr:`Connection.outbox` when the edge's flusher says so; everything else (the
core's actions: verifying tokens, subscribing, recovering, running commands, closing) is carried
out here, once, for all transports.

The session core is the only record of what the connection is subscribed to and whether it is
closing; this class keeps no second copy.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from tickmesh import metrics
from tickmesh.contracts.codes import CloseCode, ErrorCode

from .frames import Codec
from .identity import AuthFailure, Identity
from .outbox import Outbox
from .ownchannels import OwnChannels
from .session import Ack, Authenticate, Close, Join, Leave, RunCommand, Session, Subscribe, Unsubscribe

if TYPE_CHECKING:
    from .state import EdgeState

log = logging.getLogger(__name__)

_ids = itertools.count(1)
_prefix = os.urandom(3).hex()

_ERROR_NAMES = {int(c): c.name.lower() for c in ErrorCode}


def _error_name(code: Any) -> str:
    return _ERROR_NAMES.get(code, "other") if isinstance(code, int) else "other"


# A client leaving, a stream or poll ending: nothing an operator needs a line for.
_ORDINARY_CLOSES = frozenset({1000, 1001, 1005, 1006, int(CloseCode.SHUTDOWN)})


def _count_error(code: int) -> None:
    """The session's observer of every error code it sends (a function, not a method: the
    session must not hold its connection)."""
    metrics.error_sent(code)
    if code == ErrorCode.RATE_LIMITED:
        metrics.rate_limited("command")


def new_conn_id() -> str:
    """Unique across edges and restarts in practice: a random per-process prefix and a counter."""
    return f"{_prefix}-{next(_ids):x}"


class Connection:
    __slots__ = (
        "state",
        "peer",
        "transport",
        "codec",
        "opened",
        "_wake",
        "user",
        "session",
        "_metrics",
        "outbox",
        "_tasks",
        "_defer_handle",
        "_identity_at_connect",
        "writer",
        "own",
        "__weakref__",
    )

    def __init__(
        self, state: EdgeState, *, codec: Codec, peer: str, transport: str, identity: Identity | None = None
    ) -> None:
        self.state = state
        self.peer = peer
        self.transport = transport
        self.codec = codec
        self.opened = time.monotonic()
        self._wake: asyncio.Event | None = None
        self.user: str | None = None
        # Set by a transport that writes without a task of its own: the flusher calls it with
        # the connection when frames are due (see flusher.py). None: set ``wake`` instead.
        self.writer: Any = None
        settings = state.settings
        self.session = Session(
            conn_id=new_conn_id(),
            now=time.time(),
            limits=state.session_limits,
            codec=codec,
            channel_exists=state.channel_exists,
            client_heartbeats=transport == "ws",
            on_error=_count_error,
            feature_enabled=state.feature_enabled,
        )
        self._metrics: metrics.Connection | None = None
        self.outbox = Outbox(
            max_frames=settings.outbox_max_frames,
            max_bytes=settings.outbox_max_bytes,
            on_ready=state.flusher.on_ready(self),
            on_overflow=self._on_overflow,
            on_defer=self._on_defer,
            codec=codec.index,
            conflate_after=settings.conflate_after,
        )
        self._tasks: set[asyncio.Task] | None = None
        self._defer_handle: asyncio.TimerHandle | None = None
        self._identity_at_connect = identity
        self.own: OwnChannels | None = None  # the user's own trades/portfolio, when subscribed

    @property
    def conn_id(self) -> str:
        return self.session.conn_id

    @property
    def wake(self) -> asyncio.Event:
        """Set when a transport with a writer task of its own should write (see flusher.py);
        made on first use, so connections written to directly never carry one."""
        if self._wake is None:
            self._wake = asyncio.Event()
        return self._wake

    @property
    def closing(self) -> Close | None:
        """How the connection is closing, once the core decided it is."""
        return self.session.closed

    def wants(self, name: str) -> bool:
        """Whether subscription ``name`` is still wanted (an attach checks after each await)."""
        return self.session.closed is None and name in self.session.subscriptions

    def begin(self) -> None:
        """Register with the edge (the connection waits for its ``auth`` frame)."""
        self.state.register(self)
        self._metrics = metrics.connection_opened(self.transport, "msgpack" if self.codec.index else "json")

    async def start(self) -> None:
        """Register with the edge; authenticate at once when the transport carried a token."""
        self.begin()
        if self._identity_at_connect is not None:
            self._admit(self._identity_at_connect, rid=None)

    # -- input from the transport ----------------------------------------------------------

    async def feed(self, data: bytes | str) -> None:
        """One client message, carried out to the end (for transports with a reader task)."""
        pending = self.receive(data)
        if pending is not None:
            await pending

    def receive(self, data: bytes | str) -> Any:
        """One client message. What needs no await is done before this returns; the rest (a
        subscribe that must ask NATS, a token that needs a key fetched) comes back as an
        awaitable the caller must run to its end before the next message, or None when there is
        nothing left to do - the common case, so most messages cost no task."""
        metrics.messages_in("control", 1, len(data))
        self.session.receive_frame(data, time.time())
        return self._carry_out(self.session.take())

    def tick(self, now: float) -> None:
        """Called by the edge's clock about once a second."""
        self.session.tick(now)
        self._apply_now(self.session.take())

    def close(self, code: int, reason: str) -> None:
        """Close from the edge's side (revocation, drain, limits, a slow consumer)."""
        self.session.close(code, reason)
        self._apply_now(self.session.take())

    def features_changed(self) -> None:
        """Feature flags changed: the core ends what is no longer enabled for this user."""
        self.session.features_changed()
        self._apply_now(self.session.take())

    def push_frame(self, obj: dict[str, Any]) -> None:
        self.outbox.push(self.codec.encode(obj))

    # -- answers to a subscription (the core builds them; see subscribe.py) -----------------

    def subscribed(self, sub: Subscribe, fields: dict[str, Any]) -> None:
        self.session.subscribed(sub.name, sub.rid, fields)
        self._push_frames(self.session.take())

    def subscribe_failed(self, sub: Subscribe, code: int, reason: str) -> None:
        if sub.name in self.session.subscriptions:
            metrics.subscription_removed("state" if sub.state else "event")
            if self.own is not None:
                self.own.ended(sub.subject, sub.name)
        self.session.subscribe_failed(sub.name, sub.rid, code, reason)
        self._push_frames(self.session.take())

    def sink(self, sub: Subscribe) -> Any:
        """Where subscription ``sub``'s frames go: the outbox, or for the user's own trades and
        portfolio a tap that audits deliveries and keeps causal order (ownchannels.py)."""
        own = self.own
        if own is None:
            if (
                sub.audited_owner is not None
                or self.user is None
                or not sub.subject.endswith((".trades", ".portfolio"))
            ):
                return self.outbox
            own = OwnChannels(self, audit=self.state.audit, hold_s=self.state.settings.causal_hold_ms / 1000.0)
            if not own.active:
                return self.outbox
            self.own = own
        return own.sink(sub)

    def _detach(self, out: Unsubscribe) -> None:
        own = self.own
        sink = own.ended(out.subject, out.name) if own is not None else None
        self.state.subscriptions.detach(out.subject, out.name, sink or self.outbox)

    def flush_session(self) -> None:
        """Carry out what the core produced outside :meth:`feed` (answers to joins, server ends)."""
        self._apply_now(self.session.take())

    def end_subscription(self, name: str, code: int, reason: str) -> None:
        """The server ends subscription ``name`` (watch-list access revoked, list deleted)."""
        self.session.end_subscription(name, code, reason)
        self._apply_now(self.session.take())

    def _push_frames(self, outputs: list) -> None:
        for out in outputs:
            if isinstance(out, bytes):
                self.outbox.push(out)

    # -- carrying out the core's actions ---------------------------------------------------

    async def apply(self, outputs: list) -> None:
        """Carry out the core's outputs in order, awaiting what must be awaited."""
        pending = self._carry_out(outputs)
        if pending is not None:
            await pending

    def _carry_out(self, outputs: list) -> Any:
        """Carry out ``outputs`` in order as far as possible without awaiting; return a
        coroutine for the rest, or None."""
        for i, out in enumerate(outputs):
            if isinstance(out, Subscribe):
                self._subscribing(out)
                if not self.state.subscriptions.attach_now(self, out):
                    return self._finish(outputs, i)
            elif isinstance(out, Authenticate):
                result = self.state.verifier.verify_now(out.token, time.time())
                if result is None:
                    return self._finish(outputs, i)
                self._verified(out, result)
            elif isinstance(out, RunCommand):
                self._spawn(self._command(out))
            elif isinstance(out, Join):
                return self._finish(outputs, i)  # a watch-list topic's membership is looked up
            elif isinstance(out, Leave):
                self.state.presence.leave(self, out)
            elif not self._apply_one(out):
                return None
        return None

    async def _finish(self, outputs: list, i: int) -> None:
        out = outputs[i]
        if isinstance(out, Subscribe):
            await self.state.subscriptions.attach(self, out)
        elif isinstance(out, Join):
            await self.state.presence.join(self, out)
        else:
            self._verified(out, await self.state.verify(out.token))
        pending = self._carry_out(outputs[i + 1 :])
        if pending is not None:
            await pending

    def _subscribing(self, out: Subscribe) -> None:
        if out.audited_owner is not None:
            log.info(
                "privileged read of another user's channel",
                extra={
                    "event": "audit.cross_user_read",
                    "conn_id": self.conn_id,
                    "user": self.user,
                    "owner": out.audited_owner,
                    "channel": out.name,
                },
            )
        metrics.subscription_added("state" if out.state else "event")

    def _apply_now(self, outputs: list) -> None:
        """Outputs that need no await (frames, releases, a close), carried out at once, so that
        nothing a close releases can be lost to a cancelled task."""
        for out in outputs:
            if not self._apply_one(out):
                return

    def _apply_one(self, out: Any) -> bool:
        if isinstance(out, bytes):
            return self.outbox.push(out)
        if isinstance(out, Unsubscribe):
            metrics.subscription_removed("state" if out.state else "event")
            self._detach(out)
            self.outbox.forget(out.name)
            if out.answer:
                self.push_frame({"op": "ok", "id": out.rid})
        elif isinstance(out, Ack):
            if self.own is not None:
                self.own.acked(out.seqs)
        elif isinstance(out, Leave):
            self.state.presence.leave(self, out)
        elif isinstance(out, Close):
            if out.code == CloseCode.AUTH_TIMEOUT:
                metrics.auth_failed("timeout")
            self.state.flusher.closing(self)
        return True

    def _verified(self, action: Authenticate, result: Identity | AuthFailure) -> None:
        """The verifier's answer to an ``auth`` or ``refresh`` frame."""
        if action.refresh:
            self.session.auth_result(result, time.time(), rid=action.rid, refresh=True)
        elif isinstance(result, AuthFailure):
            metrics.auth_failed(result.kind)
            log.info(
                "authentication failed: %s",
                result.reason,
                extra={"event": "auth.failed", "conn_id": self.conn_id, "code": result.close_code},
            )
            self.session.auth_result(result, time.time(), rid=action.rid, refresh=False)
        else:
            self._admit(result, action.rid)
            return
        self._apply_now(self.session.take())

    def _admit(self, identity: Identity, rid: Any) -> None:
        """Admission for a verified identity (revocation, the per-user limit), then welcome."""
        admission = self.state.admission
        refusal = admission.open_user(identity)
        result: Identity | AuthFailure
        if refusal is not None:
            result = AuthFailure(refusal.code, refusal.reason, "revoked")
        else:
            result = identity
            self.user = identity.user
            self.state.user_connected(self)
        self.session.auth_result(
            result, time.time(), rid=rid, refresh=False, rate_limiter=admission.command_limiter(identity.user)
        )
        self._apply_now(self.session.take())

    async def _command(self, action: RunCommand) -> None:
        started = time.monotonic()
        reply = await self.state.run_command(action)
        result = "ok" if reply["op"] == "ok" else _error_name(reply.get("code"))
        metrics.command_done(action.name, result, time.monotonic() - started)
        if self.session.closed is None:
            self.outbox.push(self.codec.encode({"op": reply["op"], "id": action.rid, **reply}))

    # -- outbox callbacks ------------------------------------------------------------------

    def _on_overflow(self) -> None:
        """The outbox refused a frame: close with 4001. Called from inside the hub's fan-out,
        so the close (which leaves the hub) runs right after it, not in the middle of it; the
        outbox takes nothing more meanwhile."""
        if self.session.closed is not None:
            return
        metrics.slow_consumer("event")
        log.warning(
            "slow consumer disconnected",
            extra={"event": "conn.slow_consumer", "conn_id": self.conn_id, "user": self.user},
        )
        asyncio.get_running_loop().call_soon(
            self.close, int(CloseCode.SLOW_CONSUMER), "slow consumer: resume from your last position"
        )

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
        if self._tasks is None:
            self._tasks = set()
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def release(self, code: int = 1006) -> None:
        """Undo everything this connection holds at the edge. Safe to call once, at the end.
        ``code`` is recorded when the transport ended before the core decided to close."""
        if self._defer_handle is not None:
            self._defer_handle.cancel()
        if self._tasks:
            for task in list(self._tasks):
                task.cancel()
        self.session.close(code, "transport closed")
        for out in self.session.take():
            if isinstance(out, Unsubscribe):
                metrics.subscription_removed("state" if out.state else "event")
                self._detach(out)
        if self.own is not None:
            self.own.close()
            self.own = None  # it refers back here
        self.state.unregister(self)
        self.writer = None
        self.outbox.unhook()  # its callbacks point back here: let reference counting free us
        closed = self.session.closed
        if self._metrics is not None:
            self._metrics.closed(closed.code if closed else code)
        final = closed.code if closed else code
        # Every close is counted (tickmesh_edge_connections_closed_total by code); the ordinary
        # ones are logged at debug level, so that a reconnect storm of ten thousand clients is
        # not ten thousand log lines (about 7% of the edge's time in one).
        log.log(
            logging.DEBUG if final in _ORDINARY_CLOSES else logging.INFO,
            "connection closed",
            extra={
                "event": "conn.closed",
                "conn_id": self.conn_id,
                "user": self.user,
                "transport": self.transport,
                "code": final,
                "duration_s": round(time.monotonic() - self.opened, 3),
            },
        )
