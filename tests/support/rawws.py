"""A bare WebSocket client over a real socket that sends exactly the frames a test crafts
(fragments, interleaved control frames, invalid UTF-8) and reads server frames one by one, so
the edge's frame-level behaviour is checked without any library smoothing it over."""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from urllib.parse import urlsplit

from tickmesh.edge import wsframes as wsf

from .timing import t


def client_frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0) -> bytes:
    first = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    if n < 126:
        head = bytes((first, 0x80 | n))
    elif n < 65536:
        head = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, n)
    mask = os.urandom(4)
    return head + mask + wsf.unmask(payload, mask)


class RawWebSocket:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, response: str) -> None:
        self.reader = reader
        self.writer = writer
        self.response = response

    @classmethod
    async def connect(cls, url: str, *, subprotocol: str | None = None, extra: str = "") -> RawWebSocket:
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        key = base64.b64encode(os.urandom(16)).decode()
        head = (
            f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        )
        if subprotocol:
            head += f"Sec-WebSocket-Protocol: {subprotocol}\r\n"
        writer.write((head + extra + "\r\n").encode())
        response = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), t(5))).decode("latin-1")
        return cls(reader, writer, response)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def frame(self, timeout: float = 5) -> tuple[int, bytes]:
        """The next server frame as (opcode, payload); checks it is final, unmasked, no RSV."""

        async def read() -> tuple[int, bytes]:
            b0, b1 = await self.reader.readexactly(2)
            assert b0 & 0x80 and not b0 & 0x70 and not b1 & 0x80, "server frames are final, unmasked, no RSV"
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
            return b0 & 0x0F, await self.reader.readexactly(n)

        return await asyncio.wait_for(read(), t(timeout))

    async def close_frame(self, timeout: float = 5) -> tuple[int, str]:
        """Skip frames until the server's close frame; return its code and reason."""
        while True:
            opcode, payload = await self.frame(timeout)
            if opcode == wsf.OP_CLOSE:
                return struct.unpack("!H", payload[:2])[0], payload[2:].decode()

    async def eof(self, timeout: float = 5) -> bool:
        """Whether the server closed the TCP connection (after its close frame)."""
        try:
            return await asyncio.wait_for(self.reader.read(), t(timeout)) == b""
        except ConnectionError:
            return True

    def close(self) -> None:
        self.writer.close()
