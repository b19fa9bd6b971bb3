"""The WebSocket protocol (RFC 6455, with RFC 7692 compression) for the server side, sans I/O.

Bytes go in, events and bytes come out; nothing here touches a socket, a loop or a clock, so
every rule is tested with plain function calls (tests/edge/test_wsframes.py).

What it guarantees:

* **Server frames are built once.** A server frame is unmasked, so the bytes of one message are
  the same for every recipient: :func:`frame` builds them once and the engine hands the same
  object to every connection that uses the same codec.
* **Client input is checked as the RFC says.** Unmasked frames, reserved bits or opcodes,
  fragmented or oversized control frames, a continuation without a start, a new message inside
  a fragmented one, invalid UTF-8 in a text message or a close reason, and bad close codes
  raise :class:`ProtocolError` carrying the close code to send (1002, 1007 or 1009). Control
  frames may arrive between the fragments of a message.
* **Limits before work.** A message larger than ``max_size`` (after decompression too) is
  refused with 1009 as soon as its length is known, before it is buffered whole.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

_apply_mask: Callable[[bytes, bytes], bytes] | None
try:  # the C helper of the websockets package, already a dependency; pure Python otherwise
    from websockets.speedups import apply_mask as _apply_mask
except ImportError:  # pragma: no cover - the wheel ships it on every platform we run on
    _apply_mask = None

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_DATA = (OP_TEXT, OP_BINARY)
_CONTROL = (OP_CLOSE, OP_PING, OP_PONG)
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_DEFLATE_TAIL = b"\x00\x00\xff\xff"

# Close codes a peer may send (RFC 6455 7.4.1 and 7.4.2): the defined ones and 3000-4999.
_SENDABLE = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})


class ProtocolError(Exception):
    """The client broke the protocol: close with ``code`` (and ``reason``), then hang up."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Message:
    """A complete data message. ``data`` is ``str`` for text (already valid UTF-8), else bytes."""

    data: str | bytes


@dataclass(frozen=True, slots=True)
class Ping:
    payload: bytes


@dataclass(frozen=True, slots=True)
class Pong:
    payload: bytes


@dataclass(frozen=True, slots=True)
class CloseReceived:
    """The peer's close frame. ``code`` is 1005 when it carried none (RFC 6455 7.1.5)."""

    code: int
    reason: str


Event = Message | Ping | Pong | CloseReceived


# -- server frames -----------------------------------------------------------------------


def header(opcode: int, length: int, rsv1: bool = False) -> bytes:
    """The header of one final, unmasked frame carrying ``length`` payload bytes."""
    first = 0x80 | opcode | (0x40 if rsv1 else 0)
    if length < 126:
        return bytes((first, length))
    if length < 65536:
        return struct.pack("!BBH", first, 126, length)
    return struct.pack("!BBQ", first, 127, length)


def frame(opcode: int, payload: bytes, rsv1: bool = False) -> bytes:
    return header(opcode, len(payload), rsv1) + payload


def close_frame(code: int, reason: str = "") -> bytes:
    """A close frame; the reason is cut (at a character boundary) to fit 123 bytes."""
    raw = reason.encode()[:123]
    while raw:
        try:
            raw.decode()
            break
        except UnicodeDecodeError:
            raw = raw[:-1]
    return frame(OP_CLOSE, struct.pack("!H", code) + raw)


# -- compression (RFC 7692) ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Deflate:
    """A negotiated permessage-deflate. The server always asks for ``server_no_context_takeover``:
    each server message is compressed on its own, so the compressed bytes of a batch are the same
    for every connection with the same window and are compressed once, like plain frames."""

    server_bits: int = 15
    client_no_context: bool = False

    def response(self) -> str:
        out = "permessage-deflate; server_no_context_takeover"
        if self.client_no_context:
            out += "; client_no_context_takeover"
        if self.server_bits != 15:
            out += f"; server_max_window_bits={self.server_bits}"
        return out


def negotiate_deflate(header_value: str | None) -> Deflate | None:
    """The first permessage-deflate offer in ``Sec-WebSocket-Extensions`` this server can honour."""
    if not header_value:
        return None
    for offer in header_value.split(","):
        name, *params = [p.strip() for p in offer.split(";")]
        if name.lower() != "permessage-deflate":
            continue
        bits, no_context, ok, seen = 15, False, True, set()
        for param in params:
            key, _, value = param.partition("=")
            key, value = key.strip().lower(), value.strip().strip('"')
            if key in seen:
                ok = False
                break
            seen.add(key)
            if key == "server_no_context_takeover" and not value:
                pass
            elif key == "client_no_context_takeover" and not value:
                no_context = True
            elif key == "server_max_window_bits" and value.isdigit() and 9 <= int(value) <= 15:
                bits = int(value)  # raw deflate cannot do 8: such an offer is declined
            elif key == "client_max_window_bits" and (not value or (value.isdigit() and 8 <= int(value) <= 15)):
                pass  # we inflate with the largest window, which accepts any smaller one
            else:
                ok = False
                break
        if ok:
            return Deflate(bits, no_context)
    return None


def compress(payload: bytes, bits: int = 15) -> bytes:
    """One message's payload as a permessage-deflate frame body (no context kept)."""
    c = zlib.compressobj(6, zlib.DEFLATED, -bits)
    out = c.compress(payload) + c.flush(zlib.Z_SYNC_FLUSH)
    return out[:-4] if out.endswith(_DEFLATE_TAIL) else out


# -- the opening handshake -------------------------------------------------------------------

MAX_HEAD = 16384


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    @property
    def is_websocket(self) -> bool:
        upgrade = (self.headers.get("upgrade") or "").lower()
        connection = (self.headers.get("connection") or "").lower()
        return self.method == "GET" and upgrade == "websocket" and "upgrade" in connection


class BadRequest(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def head_end(buffer: bytes | bytearray) -> int:
    """The length of a complete request head in ``buffer`` (through the blank line), or -1."""
    end = buffer.find(b"\r\n\r\n")
    return -1 if end < 0 else end + 4


def parse_request(head: bytes) -> Request:
    """Parse an HTTP/1.1 request head (request line and headers). Raises :class:`BadRequest`."""
    try:
        text = head.decode("latin-1")
        line, *lines = text[:-4].split("\r\n") if text.endswith("\r\n\r\n") else text.split("\r\n")
        method, target, version = line.split(" ")
    except ValueError:
        raise BadRequest(400, "malformed request line") from None
    if not version.startswith("HTTP/1."):
        raise BadRequest(505, "HTTP/1.1 only")
    headers: dict[str, str] = {}
    for raw in lines:
        name, sep, value = raw.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(400, "malformed header")
        key = name.lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    path, _, query = target.partition("?")
    return Request(method, path, query, headers)


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def check_key(request: Request) -> str:
    """The client's ``Sec-WebSocket-Key``, checked (16 random bytes, base64), or BadRequest."""
    if request.header("sec-websocket-version") != "13":
        raise BadRequest(426, "WebSocket version 13 only")
    key = request.header("sec-websocket-key") or ""
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            raise ValueError
    except ValueError:
        raise BadRequest(400, "invalid Sec-WebSocket-Key") from None
    return key


def switching(key: str, subprotocol: str | None, extensions: str | None) -> bytes:
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept_key(key)}",
    ]
    if subprotocol:
        lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
    if extensions:
        lines.append(f"Sec-WebSocket-Extensions: {extensions}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


_REASONS = {
    400: "Bad Request",
    403: "Forbidden",
    408: "Request Timeout",
    404: "Not Found",
    426: "Upgrade Required",
    431: "Request Header Fields Too Large",
    505: "HTTP Version Not Supported",
    503: "Service Unavailable",
}


def refusal(status: int, reason: str) -> bytes:
    """A plain HTTP answer refusing the handshake; the connection closes after it."""
    body = (reason + "\n").encode()
    extra = "Sec-WebSocket-Version: 13\r\n" if status == 426 else ""
    return (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n"
    ).encode() + body


# -- reading client frames -----------------------------------------------------------------


def unmask(payload: bytes, mask: bytes) -> bytes:
    if _apply_mask is not None:
        return _apply_mask(payload, mask)
    n = len(payload)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")


class Reader:
    """Client frames in, events out: ``feed(data)`` returns the events completed by ``data``.

    A fragmented message is reassembled; control frames in between come out at once. Raises
    :class:`ProtocolError` on any violation; after that the reader must not be fed again."""

    __slots__ = ("_buf", "max_size", "_deflate", "_inflater", "_op", "_parts", "_size", "_compressed")

    def __init__(self, max_size: int, deflate: Deflate | None = None) -> None:
        self._buf = b""
        self.max_size = max_size
        self._deflate = deflate
        self._inflater: zlib._Decompress | None = None
        self._op: int | None = None  # opcode of the fragmented message in progress
        self._parts: list[bytes] | None = None
        self._size = 0
        self._compressed = False

    def feed(self, data: bytes) -> list[Event]:
        buf = self._buf + data if self._buf else data
        events: list[Event] = []
        pos, n = 0, len(buf)
        while n - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            fin, rsv, opcode = b0 & 0x80, b0 & 0x70, b0 & 0x0F
            masked, length = b1 & 0x80, b1 & 0x7F
            at = pos + 2
            if length == 126:
                if n - at < 2:
                    break
                (length,) = struct.unpack_from("!H", buf, at)
                at += 2
            elif length == 127:
                if n - at < 8:
                    break
                (length,) = struct.unpack_from("!Q", buf, at)
                at += 8
            self._check_header(fin, rsv, opcode, masked, length)
            if n - at < 4 + length:
                break
            mask = buf[at : at + 4]
            payload = unmask(buf[at + 4 : at + 4 + length], mask) if length else b""
            pos = at + 4 + length
            event = self._frame(fin, rsv, opcode, payload)
            if event is not None:
                events.append(event)
                if isinstance(event, CloseReceived):
                    pos = n  # nothing after a close frame is read
                    break
        self._buf = buf[pos:] if pos < n else b""
        return events

    def _check_header(self, fin: int, rsv: int, opcode: int, masked: int, length: int) -> None:
        if not masked:
            raise ProtocolError(1002, "client frames must be masked")
        if rsv & 0x30 or (rsv & 0x40 and (self._deflate is None or opcode in _CONTROL or opcode == OP_CONT)):
            raise ProtocolError(1002, "reserved bits set")
        if opcode in _CONTROL:
            if not fin:
                raise ProtocolError(1002, "fragmented control frame")
            if length > 125:
                raise ProtocolError(1002, "control frame too long")
        elif opcode in _DATA:
            if self._op is not None:
                raise ProtocolError(1002, "a new message inside a fragmented one")
        elif opcode == OP_CONT:
            if self._op is None:
                raise ProtocolError(1002, "continuation without a message to continue")
        else:
            raise ProtocolError(1002, f"reserved opcode {opcode}")
        size = length + (self._size if opcode == OP_CONT else 0)
        if opcode not in _CONTROL and size > self.max_size:
            raise ProtocolError(1009, f"message exceeds {self.max_size} bytes")

    def _frame(self, fin: int, rsv: int, opcode: int, payload: bytes) -> Event | None:
        if opcode == OP_PING:
            return Ping(payload)
        if opcode == OP_PONG:
            return Pong(payload)
        if opcode == OP_CLOSE:
            return _close(payload)
        if opcode != OP_CONT:
            self._compressed = bool(rsv & 0x40)
            if fin:
                return self._message(opcode, payload)
            self._op, self._parts, self._size = opcode, [payload], len(payload)
            return None
        assert self._parts is not None and self._op is not None
        self._parts.append(payload)
        self._size += len(payload)
        if not fin:
            return None
        op, data = self._op, b"".join(self._parts)
        self._op, self._parts, self._size = None, None, 0
        return self._message(op, data)

    def _message(self, opcode: int, data: bytes) -> Message:
        if self._compressed:
            data = self._inflate(data)
        if opcode == OP_TEXT:
            try:
                return Message(data.decode("utf-8"))
            except UnicodeDecodeError:
                raise ProtocolError(1007, "invalid UTF-8 in a text message") from None
        return Message(data)

    def _inflate(self, data: bytes) -> bytes:
        assert self._deflate is not None
        if self._inflater is None:
            self._inflater = zlib.decompressobj(-15)
        try:
            out = self._inflater.decompress(data + _DEFLATE_TAIL, self.max_size + 1)
        except zlib.error:
            raise ProtocolError(1007, "invalid compressed data") from None
        if len(out) > self.max_size or self._inflater.unconsumed_tail:
            raise ProtocolError(1009, f"message exceeds {self.max_size} bytes")
        if self._deflate.client_no_context:
            self._inflater = None
        return out


def _close(payload: bytes) -> CloseReceived:
    if not payload:
        return CloseReceived(1005, "")
    if len(payload) == 1:
        raise ProtocolError(1002, "close frame with a one-byte payload")
    (code,) = struct.unpack_from("!H", payload)
    if code not in _SENDABLE and not 3000 <= code <= 4999:
        raise ProtocolError(1002, f"invalid close code {code}")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(1007, "invalid UTF-8 in the close reason") from None
    return CloseReceived(code, reason)
