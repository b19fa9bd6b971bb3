"""Frame codecs for the two WebSocket subprotocols, ``tickmesh.v1.json`` and ``tickmesh.v1.msgpack``.

Server frames are built once per message per codec and the same bytes go to every subscriber
using that codec: the JSON codec splices the publisher's payload into the ``msg`` frame without
parsing or re-serialising it. Several frames due at once travel as one WebSocket message holding
an array (:meth:`Codec.batch`), which both codecs build by concatenation.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import msgpack
import orjson

from tickmesh.contracts.codes import ErrorCode


class FrameError(Exception):
    """A client frame that cannot be processed, with the protocol error code to answer with."""

    def __init__(self, code: ErrorCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Codec:
    """Encodes and decodes one subprotocol's frames."""

    name: str
    text: bool  # sent as WebSocket text (True) or binary (False) messages
    index: int  # small integer for per-codec caches in the hub

    def decode(self, data: bytes | str) -> dict[str, Any]:
        raise NotImplementedError

    def encode(self, frame: dict[str, Any]) -> bytes:
        raise NotImplementedError

    def msg(self, channel: str, seq: int, payload: bytes, parsed: Callable[[], Any]) -> bytes:
        raise NotImplementedError

    def batch(self, frames: list[bytes]) -> bytes:
        raise NotImplementedError


class JsonCodec(Codec):
    name = "tickmesh.v1.json"
    text = True
    index = 0

    def decode(self, data: bytes | str) -> dict[str, Any]:
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise FrameError(ErrorCode.MALFORMED_FRAME, "frame is not valid JSON") from None
        if not isinstance(obj, dict):
            raise FrameError(ErrorCode.MALFORMED_FRAME, "frame must be a JSON object")
        return obj

    def encode(self, frame: dict[str, Any]) -> bytes:
        return orjson.dumps(frame)

    def msg(self, channel: str, seq: int, payload: bytes, parsed: Callable[[], Any]) -> bytes:
        # ``payload`` was checked to be one JSON value by the upstream adapter; channel names
        # come from the channel grammar, which has no character that needs JSON escaping.
        return b'{"op":"msg","ch":"%b","seq":%d,"data":%b}' % (channel.encode(), seq, payload)

    def batch(self, frames: list[bytes]) -> bytes:
        if len(frames) == 1:
            return frames[0]
        return b"[" + b",".join(frames) + b"]"


class MsgpackCodec(Codec):
    name = "tickmesh.v1.msgpack"
    text = False
    index = 1

    def decode(self, data: bytes | str) -> dict[str, Any]:
        if isinstance(data, str):
            raise FrameError(ErrorCode.MALFORMED_FRAME, "the msgpack subprotocol takes binary messages")
        try:
            obj = msgpack.unpackb(data, raw=False, strict_map_key=True)
        except Exception:  # msgpack raises several unrelated types for bad input
            raise FrameError(ErrorCode.MALFORMED_FRAME, "frame is not valid MessagePack") from None
        if not isinstance(obj, dict):
            raise FrameError(ErrorCode.MALFORMED_FRAME, "frame must be a map")
        return obj

    def encode(self, frame: dict[str, Any]) -> bytes:
        return msgpack.packb(frame)

    def msg(self, channel: str, seq: int, payload: bytes, parsed: Callable[[], Any]) -> bytes:
        return msgpack.packb({"op": "msg", "ch": channel, "seq": seq, "data": parsed()})

    def batch(self, frames: list[bytes]) -> bytes:
        n = len(frames)
        if n == 1:
            return frames[0]
        if n < 16:
            head = bytes((0x90 | n,))
        elif n < 65536:
            head = b"\xdc" + struct.pack(">H", n)
        else:
            head = b"\xdd" + struct.pack(">I", n)
        return head + b"".join(frames)


JSON = JsonCodec()
MSGPACK = MsgpackCodec()
CODECS: tuple[Codec, ...] = (JSON, MSGPACK)
BY_SUBPROTOCOL = {c.name: c for c in CODECS}


def choose(offered: list[str]) -> Codec | None:
    """The codec for the client's offered subprotocols: the first one we speak, JSON when none
    were offered, ``None`` when only unknown ones were (the handshake is then refused)."""
    if not offered:
        return JSON
    for name in offered:
        codec = BY_SUBPROTOCOL.get(name.strip())
        if codec is not None:
            return codec
    return None
