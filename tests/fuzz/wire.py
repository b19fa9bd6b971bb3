"""Random and mutated WebSocket input for the socket-level fuzz (test_ws_fuzz.py): whole frames
in JSON and MessagePack, payloads with bytes flipped, cut or repeated, and broken framing
(unmasked frames, reserved bits and opcodes, oversized or fragmented control frames, lying
lengths, bad close frames, invalid UTF-8, continuation out of place), from a seeded
``random.Random`` so that a failure names the seed that replays it."""

from __future__ import annotations

import random
import struct
from typing import Any

import msgpack
import orjson

from tests.support.rawws import client_frame
from tickmesh.contracts.commands import commands

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10

CHANNELS = [
    "prices:AAPL",
    "prices:BTC-USD",
    "prices:EUR/USD",
    "portfolio",
    "portfolio:bob",
    "trades",
    "trades:bob",
    "notifications",
    "notifications:bob",
    "alerts",
    "announcements",
    "news",
    "flags",
    "presence:symbol:AAPL",
    "prices:",
    "portfolio:",
    "x" * 90,
    "notifications:*",
    "prices:*",
]
COMMANDS = sorted(commands()) + ["", "order", "x" * 70]


def value(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.randrange(9 if depth < 2 else 6)
    if pick == 0:
        return None
    if pick == 1:
        return rng.choice([True, False])
    if pick == 2:
        return rng.choice([0, -1, 1, 2**31, 2**53, -(2**63), 2**64 - 1, rng.randrange(-1000, 1000)])
    if pick == 3:
        return rng.choice([0.5, -1e308, 1e-9, 3.14])
    if pick == 4:
        return rng.choice(["", "alice", "bob", "AAPL", "é", "\x00", "x" * rng.randrange(200)])
    if pick == 5:
        return rng.choice(["buy", "sell", "market", "limit", "1.5", "-3", "1e9"])
    if pick == 6:
        return [value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {
        rng.choice(["op", "id", "ch", "qty", "side", "symbol", "data", "seq", "epoch", "x"]): value(rng, depth + 1)
        for _ in range(rng.randrange(4))
    }


def frame_dict(rng: random.Random) -> dict[str, Any]:
    """A protocol frame, mostly well-formed, with fields sometimes wrong."""
    op = rng.choice(
        ["sub", "sub", "sub", "unsub", "cmd", "cmd", "ping", "pong", "auth", "refresh", "join", "leave", "nope"]
    )
    frame: dict[str, Any] = {"op": op, "id": rng.choice([rng.randrange(100), "r", None, value(rng)])}
    if op in ("sub", "unsub"):
        frame["ch"] = rng.choice(CHANNELS) if rng.random() < 0.9 else value(rng)
        if rng.random() < 0.3:
            frame["since"] = rng.choice([{"epoch": "e", "seq": rng.randrange(-2, 10**6)}, value(rng)])
        if rng.random() < 0.2:
            frame["max_hz"] = rng.choice([0.01, 1, 5000, value(rng)])
        if rng.random() < 0.2:
            frame["history"] = rng.choice([1, 50, 1001, value(rng)])
    elif op == "cmd":
        frame["name"] = rng.choice(COMMANDS)
        frame["data"] = rng.choice(
            [
                {"symbol": "AAPL", "side": "buy", "qty": "1", "type": "market"},
                {
                    "symbol": "AAPL",
                    "side": rng.choice(["buy", "sell", "x"]),
                    "qty": value(rng),
                    "type": rng.choice(["limit", "market", value(rng)]),
                    "price": value(rng),
                },
                value(rng),
            ]
        )
        if rng.random() < 0.5:
            frame["key"] = rng.choice(["k1", "", "x" * 80, value(rng)])
    elif op in ("auth", "refresh"):
        frame["token"] = rng.choice(["", "a.b.c", "x" * 500, value(rng)])
    elif op in ("join", "leave"):
        frame["topic"] = rng.choice(["symbol:AAPL", "desk:x", value(rng)])
    if rng.random() < 0.1:
        del frame["op"]
    return frame


def encode(rng: random.Random, msgpack_codec: bool) -> bytes:
    frame = frame_dict(rng)
    try:
        body = msgpack.packb(frame) if msgpack_codec else orjson.dumps(frame)
    except (OverflowError, TypeError):
        body = b"{}"
    if rng.random() < 0.1:  # a batch, which clients may not send
        body = msgpack.packb([frame]) if msgpack_codec else orjson.dumps([frame])
    return body


def mutate(rng: random.Random, data: bytes) -> bytes:
    data = bytearray(data or b"\x00")
    for _ in range(rng.randrange(1, 4)):
        i = rng.randrange(len(data))
        how = rng.randrange(5)
        if how == 0:
            data[i] ^= 1 << rng.randrange(8)
        elif how == 1:
            del data[i:]
            data = data or bytearray(b"\x80")
        elif how == 2:
            data[i:i] = bytes([rng.randrange(256)])
        elif how == 3:
            data += data[i:]
        else:
            data[i] = rng.choice([0x00, 0xFF, 0xC1, 0x7F, 0x80, 0xDD, 0x22, 0x5C])
    return bytes(data)


def unmasked(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    first = (0x80 if fin else 0) | opcode
    if len(payload) < 126:
        return bytes((first, len(payload))) + payload
    return struct.pack("!BBH", first, 126, len(payload)) + payload


def message(rng: random.Random, msgpack_codec: bool) -> bytes:
    """One piece of client input: usually a whole frame, sometimes broken framing."""
    opcode = OP_BINARY if msgpack_codec else OP_TEXT
    body = encode(rng, msgpack_codec)
    pick = rng.random()
    if pick < 0.55:
        return client_frame(opcode, body)
    if pick < 0.75:
        return client_frame(opcode, mutate(rng, body))
    if pick < 0.80:  # the other codec's frame type, or the other encoding
        return client_frame(OP_TEXT if msgpack_codec else OP_BINARY, encode(rng, not msgpack_codec))
    if pick < 0.84:  # fragmented, with a ping between the fragments
        cut = rng.randrange(len(body) + 1)
        return (
            client_frame(opcode, body[:cut], fin=False)
            + client_frame(OP_PING, b"p")
            + client_frame(OP_CONT, body[cut:])
        )
    if pick < 0.86:
        return client_frame(OP_PING, rng.randbytes(rng.randrange(0, 126)))
    if pick < 0.87:
        return client_frame(OP_PONG, rng.randbytes(rng.randrange(0, 30)))
    if pick < 0.88:
        return unmasked(opcode, body)
    if pick < 0.89:
        return client_frame(opcode, body, rsv=rng.choice([0x40, 0x20, 0x10]))
    if pick < 0.90:
        return client_frame(rng.choice([3, 4, 5, 6, 7, 11, 12, 13, 14, 15]), body)
    if pick < 0.91:
        return client_frame(OP_PING, b"x" * 126)  # control frame too long
    if pick < 0.92:
        return client_frame(OP_PING, b"p", fin=False)  # fragmented control frame
    if pick < 0.93:
        return client_frame(OP_CONT, body)  # continuation of nothing
    if pick < 0.94:
        return client_frame(OP_TEXT, b"\xff\xfe" + body)  # invalid UTF-8
    if pick < 0.95:
        return client_frame(
            OP_CLOSE,
            rng.choice(
                [
                    b"\x03",
                    struct.pack("!H", rng.choice([0, 999, 1004, 1005, 1006, 1016, 2999, 5000])),
                    struct.pack("!H", 1000) + b"\xff\xfe",
                ]
            ),
        )
    if pick < 0.96:  # a length that lies (the rest of the bytes never come, or come as the next frame)
        return struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, rng.choice([2**63 - 1, 2**40, 200_000])) + b"mask" + body
    if pick < 0.97:
        return client_frame(opcode, b"x" * rng.choice([1999, 2001, 20_001]))  # the edge's frame limits
    return rng.randbytes(rng.randrange(1, 64))
