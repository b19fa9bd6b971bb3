"""WebSocket transport: pumps frames between a Quart websocket and a :class:`Connection`.

Two loops per connection: the reader feeds client frames to the connection; the writer, woken
by the edge's flusher, sends everything pending as one WebSocket message, so frames that arrive
while a send is in progress are batched naturally. A send waits for the socket's write buffer,
so a slow client slows only its own writer while its outbox conflates or overflows.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tickmesh import metrics
from tickmesh.contracts.codes import CloseCode

from . import frames
from .connection import Connection
from .identity import AuthFailure

if TYPE_CHECKING:
    from .state import EdgeState

log = logging.getLogger(__name__)


def origin_allowed(origin: str | None, host: str | None, allowed: tuple[str, ...]) -> bool:
    """No Origin (not a browser), the edge's own origin, or one on the allow-list."""
    if not origin:
        return True
    if "*" in allowed or origin in allowed:
        return True
    return bool(host) and urlsplit(origin).netloc == host


def bearer(value: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value."""
    if value and value[:7].lower() == "bearer ":
        return value[7:].strip()
    return None


def bearer_token(headers: Any) -> str | None:
    return bearer(headers.get("Authorization"))


async def serve(ws: Any, state: EdgeState) -> None:
    """Run one WebSocket connection to its end."""
    settings = state.settings
    if not origin_allowed(ws.headers.get("Origin"), ws.headers.get("Host"), settings.allowed_origins):
        log.info("refused a connection from a foreign origin", extra={"event": "conn.bad_origin"})
        metrics.auth_failed("forbidden_origin")
        await ws.close(1008)  # before accept: the handshake is answered with HTTP 403
        return
    offered = list(ws.requested_subprotocols or [])
    codec = frames.choose(offered)
    if codec is None:
        await ws.close(1002)
        return
    await ws.accept(subprotocol=codec.name if offered else None)
    peer = ws.remote_addr or "?"
    refusal = state.admission.open_peer(peer)
    if refusal is not None:
        await ws.close(refusal.code, refusal.reason)
        return
    identity = None
    token = bearer_token(ws.headers)
    if token is not None:
        result = await state.verify(token)
        if isinstance(result, AuthFailure):
            metrics.auth_failed(result.kind)
            state.admission.close_peer(peer)
            await ws.close(result.close_code, result.reason)
            return
        identity = result
    conn = Connection(state, codec=codec, peer=peer, transport="ws", identity=identity)
    reader = writer = None
    try:
        await conn.start()
        reader = asyncio.ensure_future(_read(ws, conn))
        writer = asyncio.ensure_future(_write(ws, conn))
        await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (reader, writer):
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in (reader, writer) if t is not None), return_exceptions=True)
        conn.release()


async def _read(ws: Any, conn: Connection) -> None:
    while conn.closing is None:
        data = await ws.receive()
        await conn.feed(data)


async def _write(ws: Any, conn: Connection) -> None:
    flusher = conn.state.flusher
    wake = conn.wake
    while True:
        await wake.wait()
        wake.clear()
        closing = conn.closing
        if closing is None or closing.code != CloseCode.SLOW_CONSUMER:
            batch = flusher.take(conn)
            if batch is not None:
                await ws.send(batch.payload.text() if conn.codec.text else batch.data)
                batch.written()
        if closing is not None:
            await ws.close(closing.code, closing.reason)
            return
