"""The edge's own WebSocket engine: ``/ws`` served by asyncio protocols, everything else by Quart.

Every TCP connection to the edge's port starts in :class:`FrontDoor`, which reads the request
head. A WebSocket upgrade to ``/ws`` is answered here; any other request (SSE, polling,
commands, tickets, the dashboard, ``/metrics``, health) is handed, with the bytes already read,
to Hypercorn's connection handler, so Quart serves it exactly as before on the same host, port
and path.

An upgraded connection is a :class:`WsConnection`: a protocol object, not a task. Client frames
are parsed by :mod:`wsframes` in ``data_received`` and fed to the session core. Frames leave
when the edge's flusher calls :meth:`WsConnection.write_due` on its tick: the pending batch,
framed once per tick and codec (the same ``bytes`` for every connection with the same pending
frames), goes straight to the transport with ``transport.write``; no await, no task, no copy per
connection. A connection whose transport buffer is above its high-water mark
(``pause_writing``) is skipped until it drains (``resume_writing``): its outbox keeps conflating
state channels or fills towards the 4001 close for event channels, and nobody else waits for it.

The guarantees of the Quart path hold here too: the JSON and MessagePack subprotocols, the frame
limits (``EDGE_MAX_FRAME_BYTES`` answered by the core with 103, ``EDGE_HARD_FRAME_BYTES`` closing
with 1009), the Origin check, heartbeats, close codes with reasons and the close handshake,
permessage-deflate when ``EDGE_PERMESSAGE_DEFLATE`` is on (compressed once per batch: the server
keeps no compression context), and the drain on SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tickmesh import metrics
from tickmesh.contracts.codes import CloseCode

from . import frames
from . import wsframes as wsf
from .connection import Connection
from .identity import AuthFailure, Identity
from .ws import bearer, origin_allowed

if TYPE_CHECKING:
    from .state import EdgeState

log = logging.getLogger(__name__)

WS_PATH = "/ws"
CLOSE_TIMEOUT = 5.0  # seconds the peer has to answer our close frame before we hang up
INBOX_MAX = 64  # client messages queued behind one that awaits (a subscribe); then reading pauses


class FrontDoor(asyncio.Protocol):
    """The first protocol of every connection: routes it by its request head. A client that
    does not finish its head within ``EDGE_HEAD_TIMEOUT_S`` (a slow-headers attack holding
    descriptors) is cut off."""

    __slots__ = ("_engine", "_transport", "_buf", "_timer")

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._transport: asyncio.Transport | None = None
        self._buf = b""
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._timer = asyncio.get_running_loop().call_later(self._engine.head_timeout, self._too_slow)

    def _too_slow(self) -> None:
        self._timer = None
        if self._transport is not None:
            metrics.rate_limited("head_timeout")
            self._refuse(408, "request head not received in time")

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        end = wsf.head_end(buf)
        if end < 0:
            if len(buf) > wsf.MAX_HEAD:
                self._refuse(431, "request head too large")
            else:
                self._buf = buf
            return
        if end > wsf.MAX_HEAD:  # whole, but too large: the same answer however it was segmented
            self._refuse(431, "request head too large")
            return
        self._buf = b""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        transport = self._transport
        assert transport is not None
        try:
            request = wsf.parse_request(buf[:end])
        except wsf.BadRequest:
            # Not ours to judge: Hypercorn answers malformed HTTP the way it always has.
            self._engine.to_http(transport, buf)
            return
        if request.path != WS_PATH or not request.is_websocket:
            self._engine.to_http(transport, buf)
            return
        self._engine.upgrade(transport, request, buf[end:])

    def _refuse(self, status: int, reason: str) -> None:
        assert self._transport is not None
        self._transport.write(wsf.refusal(status, reason))
        self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class Engine:
    """What the edge's protocols share: the edge state, the HTTP hand-off, settings."""

    def __init__(self, state: EdgeState, to_http: Callable[[asyncio.Transport, bytes], None]) -> None:
        self.state = state
        self.to_http = to_http
        settings = state.settings
        self.deflate_on = settings.permessage_deflate
        self.max_message = settings.hard_frame_bytes
        self.high_water = settings.ws_high_water
        self.head_timeout = settings.head_timeout
        self.connections: set[WsConnection] = set()

    def front_door(self) -> FrontDoor:
        return FrontDoor(self)

    # -- the opening handshake ---------------------------------------------------------------

    def upgrade(self, transport: asyncio.Transport, request: wsf.Request, rest: bytes) -> None:
        """Answer a WebSocket upgrade of ``/ws``; refusals are plain HTTP answers."""
        state = self.state
        try:
            key = wsf.check_key(request)
        except wsf.BadRequest as exc:
            return _refuse(transport, exc.status, exc.reason)
        if not origin_allowed(request.header("origin"), request.header("host"), state.settings.allowed_origins):
            log.info("refused a connection from a foreign origin", extra={"event": "conn.bad_origin"})
            metrics.auth_failed("forbidden_origin")
            return _refuse(transport, 403, "origin not allowed")
        offered = [p.strip() for p in (request.header("sec-websocket-protocol") or "").split(",") if p.strip()]
        codec = frames.choose(offered)
        if codec is None:
            return _refuse(transport, 400, "no supported subprotocol (tickmesh.v1.json, tickmesh.v1.msgpack)")
        deflate = wsf.negotiate_deflate(request.header("sec-websocket-extensions")) if self.deflate_on else None
        transport.write(wsf.switching(key, codec.name if offered else None, deflate.response() if deflate else None))
        peer = _peer(transport)
        conn = WsConnection(self, transport, codec, peer, deflate)
        transport.set_protocol(conn)
        refusal = state.admission.open_peer(peer)
        if refusal is not None:
            conn.close_now(refusal.code, refusal.reason)
            return
        token = bearer(request.header("authorization"))
        if token is None:
            conn.open(None, rest)
        else:
            # Verifying can await (a JWKS fetch): read nothing until it is done.
            transport.pause_reading()
            conn.spawn(self._verify_then_open(conn, token, rest))

    async def _verify_then_open(self, conn: WsConnection, token: str, rest: bytes) -> None:
        result = await self.state.verify(token)
        if isinstance(result, AuthFailure):
            metrics.auth_failed(result.kind)
            self.state.admission.close_peer(conn.peer)
            conn.close_now(result.close_code, result.reason)
            return
        conn.open(result, rest)
        if conn.transport is not None:
            conn.transport.resume_reading()


def _refuse(transport: asyncio.Transport, status: int, reason: str) -> None:
    transport.write(wsf.refusal(status, reason))
    transport.close()


def _peer(transport: asyncio.BaseTransport) -> str:
    addr = transport.get_extra_info("peername")
    return str(addr[0]) if isinstance(addr, tuple) and addr else "?"


class WsConnection(asyncio.Protocol):
    """One upgraded WebSocket: frames in through ``data_received``, batches out from the
    flusher through :meth:`write_due`. No task exists for it while it is idle."""

    __slots__ = (
        "engine",
        "transport",
        "codec",
        "peer",
        "deflate",
        "reader",
        "conn",
        "write_paused",
        "close_sent",
        "close_code",
        "_timer",
        "_inbox",
        "_busy",
        "_tasks",
        "_opcode",
    )

    def __init__(
        self, engine: Engine, transport: asyncio.Transport, codec: frames.Codec, peer: str, deflate: wsf.Deflate | None
    ) -> None:
        self.engine = engine
        self.transport: asyncio.Transport | None = transport
        self.codec = codec
        self.peer = peer
        self.deflate = deflate
        self.reader = wsf.Reader(engine.max_message, deflate)
        self.conn: Connection | None = None
        self.write_paused = False
        self.close_sent = False
        self.close_code: int | None = None  # the code of the close frame received, if any
        self._timer: asyncio.TimerHandle | None = None
        self._inbox: list[Any] | None = None
        self._busy: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] | None = None
        self._opcode = wsf.OP_TEXT if codec.text else wsf.OP_BINARY
        transport.set_write_buffer_limits(high=engine.high_water, low=engine.high_water // 4)

    # -- opening -----------------------------------------------------------------------------

    def open(self, identity: Identity | None, rest: bytes) -> None:
        """Create the connection (authenticated already when the handshake carried a token)."""
        if self.transport is None:
            self.engine.state.admission.close_peer(self.peer)
            return
        conn = Connection(self.engine.state, codec=self.codec, peer=self.peer, transport="ws", identity=identity)
        conn.writer = self.write_due
        self.conn = conn
        self.engine.connections.add(self)
        if identity is None:
            conn.begin()
        else:
            self._run(conn.start())
        if rest:
            self.data_received(rest)

    # -- reading -----------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.transport is None:
            return
        try:
            events = self.reader.feed(data)
        except wsf.ProtocolError as exc:
            self._protocol_error(exc)
            return
        for event in events:
            conn = self.conn
            if isinstance(event, wsf.Message):
                # Once we sent our close frame, data is discarded (RFC 6455 1.4).
                if conn is not None and not self.close_sent:
                    self._message(conn, event.data)
            elif isinstance(event, wsf.Ping):
                if not self.close_sent:
                    self.transport.write(wsf.frame(wsf.OP_PONG, event.payload))
            elif isinstance(event, wsf.Pong):
                if conn is not None:
                    conn.session.last_seen = time.time()
            else:
                self._close_received(event)
                return
            if self.transport is None:
                return

    def _message(self, conn: Connection, data: Any) -> None:
        if self._busy is not None:
            # A previous message is still being carried out (a subscribe awaiting NATS): keep
            # the order, and stop reading while too many wait.
            assert self._inbox is not None
            self._inbox.append(data)
            if len(self._inbox) >= INBOX_MAX and self.transport is not None:
                self.transport.pause_reading()
            return
        pending = conn.receive(data)
        if pending is not None:
            self._inbox = []
            self._busy = asyncio.ensure_future(self._drain_inbox(pending))

    async def _drain_inbox(self, first: Any) -> None:
        conn = self.conn
        assert conn is not None and self._inbox is not None
        try:
            await first
            while self._inbox and conn.closing is None:
                data = self._inbox.pop(0)
                if len(self._inbox) == INBOX_MAX // 2 and self.transport is not None:
                    self.transport.resume_reading()
                pending = conn.receive(data)
                if pending is not None:
                    await pending
        finally:
            self._busy = None
            self._inbox = None
            if self.transport is not None and not self.close_sent:
                self.transport.resume_reading()

    def _protocol_error(self, exc: wsf.ProtocolError) -> None:
        log.info("protocol error: %s", exc.reason, extra={"event": "conn.protocol_error", "code": exc.code})
        if self.conn is not None:
            self.conn.session.close(exc.code, exc.reason)
            self.conn.session.take()
        self.close_now(exc.code, exc.reason)

    def _close_received(self, event: wsf.CloseReceived) -> None:
        self.close_code = event.code
        transport = self.transport
        assert transport is not None
        if not self.close_sent:
            # The client closes: answer with its code (RFC 6455 5.5.1), then hang up.
            code = event.code if event.code not in (1005, 1006, 1015) else 1000
            transport.write(wsf.close_frame(code))
            self.close_sent = True
        transport.close()

    # -- writing -----------------------------------------------------------------------------

    def write_due(self, conn: Connection) -> None:
        """Called by the flusher when ``conn`` has frames due, or is closing."""
        transport = self.transport
        if transport is None or self.close_sent:
            return
        closing = conn.closing
        if not self.write_paused and (closing is None or closing.code != CloseCode.SLOW_CONSUMER):
            batch = self.engine.state.flusher.take(conn)
            if batch is not None:
                transport.write(batch.framed(self._opcode, self.deflate))
                batch.written()
        if closing is not None:
            self.close_now(closing.code, closing.reason)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        conn = self.conn
        if conn is not None and len(conn.outbox):
            self.engine.state.flusher.mark(conn)

    # -- closing -----------------------------------------------------------------------------

    def close_now(self, code: int, reason: str) -> None:
        """Send our close frame and wait (a bounded time) for the peer's before hanging up."""
        transport = self.transport
        if transport is None or self.close_sent:
            return
        self.close_sent = True
        transport.write(wsf.close_frame(code, reason))
        self._timer = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, self._abort)

    def _abort(self) -> None:
        self._timer = None
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._busy is not None:
            self._busy.cancel()
        self.engine.connections.discard(self)
        conn = self.conn
        if conn is not None:
            self.conn = None
            conn.writer = None
            conn.release(self.close_code or 1006)
        else:
            # Never opened (refused before the connection existed): the address slot, if taken,
            # was released where the refusal happened.
            pass

    # -- tasks -------------------------------------------------------------------------------

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        if self._tasks is None:
            self._tasks = set()
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _run(self, coro: Any) -> None:
        """Start the connection's authenticated opening; messages wait behind it in order."""
        self._inbox = []
        self._busy = asyncio.ensure_future(self._drain_inbox(coro))
