# These fakes exist because the real market-data providers (Coinbase, Binance) cannot be reached
# from tests: tests use the network only on 127.0.0.1. Each fake is a real WebSocket server on
# 127.0.0.1, port 0, that speaks its provider's documented protocol (see
# /work/shared/providers.md) and replays a recorded session from recordings/.
"""Local stand-ins for remote market-data providers.

A fake plays one *script* per connection (the last script repeats): what to do once the
recorded session has been sent. Scripts: ``"silent"`` (stay open, say nothing: the provider went
quiet), ``"close"`` (close the socket), ``"shutdown"`` (Binance: announce ``serverShutdown`` and
keep the socket open, as the real server does before it closes), ``"refuse"`` (close right after
the subscription, before any data). Every client frame is kept in ``connections[i].received``.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

RECORDINGS = Path(__file__).parent / "recordings"


def recording(name: str) -> list[str]:
    return [line for line in (RECORDINGS / name).read_text().splitlines() if line.strip()]


@dataclass
class Connection:
    path: str
    received: list[dict[str, Any]] = field(default_factory=list)
    pongs: int = 0


class FakeProvider:
    def __init__(
        self,
        frames: list[str],
        scripts: tuple[str, ...] = ("silent",),
        *,
        drop: frozenset[int] = frozenset(),
        spacing: float = 0.005,
    ) -> None:
        self.frames = frames
        self.scripts = scripts
        self.drop = drop
        self.spacing = spacing
        self.connections: list[Connection] = []
        self._server = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FakeProvider:
        self._server = await serve(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, ws: ServerConnection) -> None:
        conn = Connection(path=ws.request.path)
        index = len(self.connections)
        self.connections.append(conn)
        script = self.scripts[min(index, len(self.scripts) - 1)]
        try:
            await self.handshake(ws, conn)
            if script == "refuse":
                return
            for i, frame in enumerate(self.frames):
                if i not in self.drop:
                    await ws.send(frame)
                    await asyncio.sleep(self.spacing)
            await self.after(ws, conn, script)
        except ConnectionClosed:
            pass

    async def _read(self, ws: ServerConnection, conn: Connection) -> dict[str, Any]:
        msg = json.loads(await ws.recv())
        conn.received.append(msg)
        return msg

    async def handshake(self, ws: ServerConnection, conn: Connection) -> None:
        raise NotImplementedError

    async def after(self, ws: ServerConnection, conn: Connection, script: str) -> None:
        if script == "close":
            return
        # "silent": keep reading (subscriptions after reconnects, etc.) but never answer.
        while True:
            await self._read(ws, conn)


class FakeCoinbase(FakeProvider):
    """Coinbase Advanced Trade: expects a ``subscribe`` for ``ticker`` and one for
    ``heartbeats`` (in any order, within 5 s) before it sends anything."""

    def __init__(self, scripts: tuple[str, ...] = ("silent",), **kw: Any) -> None:
        super().__init__(recording("coinbase_session.ndjson"), scripts, **kw)

    async def handshake(self, ws: ServerConnection, conn: Connection) -> None:
        channels: set[str] = set()
        async with asyncio.timeout(5):
            while channels != {"ticker", "heartbeats"}:
                msg = await self._read(ws, conn)
                if msg.get("type") == "subscribe" and msg.get("product_ids"):
                    channels.add(msg.get("channel"))


class FakeBinance(FakeProvider):
    """Binance Spot combined streams at ``/stream``: answers each ``SUBSCRIBE`` with
    ``{"result": null, "id": ...}``, and pings the client once (the client must pong)."""

    def __init__(self, scripts: tuple[str, ...] = ("silent",), **kw: Any) -> None:
        super().__init__(recording("binance_session.ndjson"), scripts, **kw)

    async def handshake(self, ws: ServerConnection, conn: Connection) -> None:
        msg = await self._read(ws, conn)
        if msg.get("method") != "SUBSCRIBE":
            await ws.send(json.dumps({"code": 2, "msg": "Invalid request", "id": msg.get("id")}))
            return
        await ws.send(json.dumps({"result": None, "id": msg["id"]}))
        waiter = await ws.ping(b"binance-ping")
        async with asyncio.timeout(5):
            await waiter
        conn.pongs += 1

    async def after(self, ws: ServerConnection, conn: Connection, script: str) -> None:
        if script == "shutdown":
            await ws.send(
                json.dumps({"stream": "!serverShutdown", "data": {"e": "serverShutdown", "E": 1772460086400000}})
            )
            script = "silent"
        await super().after(ws, conn, script)
