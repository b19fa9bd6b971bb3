"""A WebSocket test client that speaks the tickmesh protocol over a real socket."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import orjson
import websockets

from .timing import t


class Client:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.pending: list[dict[str, Any]] = []
        self._next_id = 0

    @classmethod
    async def connect(cls, url: str, **kwargs: Any) -> Client:
        return cls(await websockets.connect(url, **kwargs))

    @classmethod
    async def connect_small_buffers(cls, url: str) -> Client:
        """A client whose socket buffers are tiny and which stops reading from the socket while
        its one-message queue is full: when the test does not call recv, it is a stalled reader."""
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (parts.hostname, parts.port))
        return cls(await websockets.connect(url, sock=sock, max_queue=1, compression=None))

    @classmethod
    async def login(cls, url: str, token: str, **kwargs: Any) -> Client:
        """Connect and authenticate with an ``auth`` frame; the welcome is in ``.welcome``."""
        client = await cls.connect(url, **kwargs)
        client.welcome, _ = await client.request("auth", token=token)
        assert client.welcome["op"] == "welcome", client.welcome
        return client

    async def close(self) -> None:
        await self.ws.close()

    async def send(self, frame: dict[str, Any] | str | bytes) -> None:
        await self.ws.send(frame if isinstance(frame, (str, bytes)) else orjson.dumps(frame).decode())

    async def recv(self, timeout: float = 5) -> dict[str, Any]:
        """The next frame (batches are unpacked in order)."""
        while not self.pending:
            raw = await asyncio.wait_for(self.ws.recv(), t(timeout))
            obj = orjson.loads(raw)
            self.pending.extend(obj if isinstance(obj, list) else [obj])
        return self.pending.pop(0)

    async def request(self, op: str, timeout: float = 5, **fields: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Send ``op`` with a fresh id; return its reply and the other frames seen before it."""
        self._next_id += 1
        rid = self._next_id
        await self.send({"op": op, "id": rid, **fields})
        return await self.reply_to(rid, timeout)

    async def reply_to(self, rid: Any, timeout: float = 5) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        seen = []
        while True:
            frame = await self.recv(timeout)
            if frame.get("id") == rid and frame.get("op") in ("ok", "err", "pong", "welcome"):
                return frame, seen
            seen.append(frame)

    async def messages(self, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        out = []
        while len(out) < count:
            frame = await self.recv(timeout)
            if frame.get("op") == "msg":
                out.append(frame)
        return out
