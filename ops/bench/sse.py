"""The Server-Sent Events load client, for the edge's ``/sse`` fallback transport.

``POST /ticket`` with ``Authorization: Bearer <token>`` returns a short-lived ticket; ``GET
/sse?ticket=...&ch=...`` then streams ``event: ok`` once per subscription and ``event: msg``
events whose ``data:`` is the frame. This adapter plugs into the WebSocket client's bookkeeping
(:class:`~tickmesh.ops.bench.client.Conn` and ``Worker``): a connection is ready once every
``ok`` has arrived, and timestamps are counted by ``Worker.record`` on the raw bytes (chunked
transfer framing does not get in the way of the regular expression).
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson

from tickmesh import devtokens


class SseTransport:
    """What the worker expects of ``conn.transport``: pausable, closable."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.underlying_transport = transport

    def disconnect(self, graceful: bool = True) -> None:
        self.underlying_transport.close()


class SseProtocol(asyncio.Protocol):
    def __init__(self, conn: Any, request: bytes) -> None:
        self.conn = conn
        self.request = request
        self.acks = 0
        self.status_checked = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.conn.transport = SseTransport(transport)
        self.conn.handshaking = True
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        conn, worker = self.conn, self.conn.worker
        if conn.handshaking:
            if not self.status_checked:
                self.status_checked = True
                if not data.startswith(b"HTTP/1.1 200"):
                    line = data.split(b"\r\n", 1)[0].decode(errors="replace")
                    worker.errors[f"sse: {line}"] = worker.errors.get(f"sse: {line}", 0) + 1
                    conn.transport.disconnect()
                    return
            self.acks += data.count(b"event: ok")
            if self.acks >= len(conn.channels):
                conn.handshaking = False
                conn.ready_at = time.time()
                worker.on_ready(conn, True)
        if conn.measure:
            worker.record(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.transport = None
        self.conn.worker.on_disconnected(self.conn)


async def _ticket(host: str, port: int, token: str) -> str:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(
            (
                f"POST /ticket HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
                "Content-Length: 0\r\nConnection: close\r\n\r\n"
            ).encode()
        )
        raw = await reader.read()
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        status = head.split(b"\r\n", 1)[0].decode(errors="replace")
        raise ConnectionError(f"ticket refused: {status}")
    return orjson.loads(body)["ticket"]


async def open_sse(conn: Any, url: str, sock: socket.socket, secret: str | None) -> None:
    """Get a ticket, then open ``GET /sse`` for ``conn.channels`` on ``sock`` (unconnected)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    token = devtokens.mint(f"bench-{conn.worker.number}-{conn.index}", secret=secret or "", ttl=3600)
    ticket = await _ticket(host, port, token)
    query = urlencode([("ticket", ticket)] + [("ch", ch) for ch in conn.channels])
    request = (
        f"GET {parts.path}?{query} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n\r\n"
    ).encode()
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (host, port))
    await loop.create_connection(lambda: SseProtocol(conn, request), sock=sock)
