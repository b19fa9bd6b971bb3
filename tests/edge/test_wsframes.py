"""The WebSocket protocol core without sockets: handshake, server frames, client frame rules."""

import os
import struct
import zlib

import pytest

from tickmesh.edge import wsframes as wsf


def client_frame(
    opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, mask: bytes | None = None, masked: bool = True
) -> bytes:
    """A client frame as a browser sends it (masked, unless told otherwise)."""
    first = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    if n < 126:
        head = bytes((first, (0x80 if masked else 0) | n))
    elif n < 65536:
        head = struct.pack("!BBH", first, (0x80 if masked else 0) | 126, n)
    else:
        head = struct.pack("!BBQ", first, (0x80 if masked else 0) | 127, n)
    if not masked:
        return head + payload
    mask = mask or os.urandom(4)
    return head + mask + wsf.unmask(payload, mask)


def parse_server_frame(data: bytes) -> tuple[int, bool, bytes]:
    """(opcode, rsv1, payload) of one whole server frame, checking it is final and unmasked."""
    b0, b1 = data[0], data[1]
    assert b0 & 0x80 and not b1 & 0x80
    n, at = b1 & 0x7F, 2
    if n == 126:
        (n,) = struct.unpack_from("!H", data, 2)
        at = 4
    elif n == 127:
        (n,) = struct.unpack_from("!Q", data, 2)
        at = 10
    assert len(data) == at + n
    return b0 & 0x0F, bool(b0 & 0x40), data[at:]


# -- server frames -----------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_server_frames_use_the_shortest_length_encoding(n):
    data = wsf.frame(wsf.OP_TEXT, b"x" * n)
    opcode, rsv1, payload = parse_server_frame(data)
    assert (opcode, rsv1, len(payload)) == (wsf.OP_TEXT, False, n)
    assert len(data) - n == (2 if n < 126 else 4 if n < 65536 else 10)


def test_a_close_frame_carries_code_and_a_reason_cut_at_a_character_boundary():
    opcode, _, payload = parse_server_frame(wsf.close_frame(4001, "slow consumer"))
    assert opcode == wsf.OP_CLOSE and struct.unpack("!H", payload[:2])[0] == 4001 and payload[2:] == b"slow consumer"
    _, _, payload = parse_server_frame(wsf.close_frame(1000, "é" * 100))
    assert len(payload) <= 125 and payload[2:].decode() == "é" * 61


def test_compressed_frames_inflate_to_the_payload_and_are_the_same_bytes_every_time():
    payload = b'{"op":"msg","ch":"prices:AAPL","seq":1,"data":{"last":"187.20"}}' * 20
    framed = wsf.frame(wsf.OP_TEXT, wsf.compress(payload), rsv1=True)
    assert framed == wsf.frame(wsf.OP_TEXT, wsf.compress(payload), rsv1=True)  # no context kept
    _, rsv1, body = parse_server_frame(framed)
    assert rsv1 and zlib.decompressobj(-15).decompress(body + b"\x00\x00\xff\xff") == payload
    assert len(body) < len(payload) // 5


# -- the handshake -----------------------------------------------------------------------------

HEAD = (
    b"GET /ws?x=1 HTTP/1.1\r\nHost: edge:8000\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Protocol: graphql-ws\r\nSec-WebSocket-Protocol: tickmesh.v1.json\r\n\r\n"
)


def test_the_handshake_is_parsed_and_answered_as_rfc_6455_says():
    assert wsf.head_end(HEAD[:-2]) == -1 and wsf.head_end(HEAD + b"\x81") == len(HEAD)
    req = wsf.parse_request(HEAD)
    assert req.is_websocket and (req.path, req.query) == ("/ws", "x=1")
    assert req.header("sec-websocket-protocol") == "graphql-ws, tickmesh.v1.json"
    key = wsf.check_key(req)
    assert wsf.accept_key(key) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # the RFC's own example
    answer = wsf.switching(key, "tickmesh.v1.json", None).decode()
    assert answer.startswith("HTTP/1.1 101 ") and "Sec-WebSocket-Protocol: tickmesh.v1.json\r\n" in answer


@pytest.mark.parametrize(
    "head, status",
    [
        (
            b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            426,
        ),
        (
            b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: short\r\n\r\n",
            400,
        ),
    ],
)
def test_bad_handshakes_are_refused_with_a_status(head, status):
    with pytest.raises(wsf.BadRequest) as info:
        wsf.check_key(wsf.parse_request(head))
    assert info.value.status == status
    assert wsf.refusal(status, "no").startswith(b"HTTP/1.1 %d " % status)


def test_malformed_request_heads_raise_bad_request():
    for head in (b"GARBAGE\r\n\r\n", b"GET /ws HTTP/1.1\r\nNo colon here\r\n\r\n", b"GET /ws SPDY/3\r\n\r\n"):
        with pytest.raises(wsf.BadRequest):
            wsf.parse_request(head)


@pytest.mark.parametrize(
    "offer, response",
    [
        ("permessage-deflate; client_max_window_bits", "permessage-deflate; server_no_context_takeover"),
        (
            "permessage-deflate; client_no_context_takeover",
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        ),
        (
            "permessage-deflate; server_max_window_bits=8, permessage-deflate; server_max_window_bits=10",
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10",
        ),
        ("x-webkit-deflate-frame", None),
        ("permessage-deflate; unknown=1", None),
        ("permessage-deflate; server_no_context_takeover; server_no_context_takeover", None),
    ],
)
def test_permessage_deflate_offers_are_honoured_or_declined(offer, response):
    deflate = wsf.negotiate_deflate(offer)
    assert (deflate.response() if deflate else None) == response


# -- client frames -----------------------------------------------------------------------------


def test_messages_come_out_whole_whatever_the_chunking():
    data = client_frame(wsf.OP_TEXT, b'{"op":"ping"}') + client_frame(wsf.OP_BINARY, b"\x81\xa2op\xa4ping")
    for size in (1, 2, 3, 7, len(data)):
        reader = wsf.Reader(1 << 20)
        events = []
        for i in range(0, len(data), size):
            events += reader.feed(data[i : i + size])
        assert events == [wsf.Message('{"op":"ping"}'), wsf.Message(b"\x81\xa2op\xa4ping")]


def test_a_fragmented_message_is_reassembled_and_control_frames_in_between_come_out_first():
    reader = wsf.Reader(1 << 20)
    data = (
        client_frame(wsf.OP_TEXT, b'{"op":', fin=False)
        + client_frame(wsf.OP_PING, b"hb")
        + client_frame(wsf.OP_CONT, b'"pi', fin=False)
        + client_frame(wsf.OP_PONG, b"")
        + client_frame(wsf.OP_CONT, b'ng"}')
    )
    assert reader.feed(data) == [wsf.Ping(b"hb"), wsf.Pong(b""), wsf.Message('{"op":"ping"}')]


def test_utf8_split_across_fragments_is_valid():
    text = "prix: 187,20 €".encode()
    cut = text.index(b"\xe2") + 1
    reader = wsf.Reader(1 << 20)
    events = reader.feed(client_frame(wsf.OP_TEXT, text[:cut], fin=False) + client_frame(wsf.OP_CONT, text[cut:]))
    assert events == [wsf.Message("prix: 187,20 €")]


@pytest.mark.parametrize(
    "data, code",
    [
        (client_frame(wsf.OP_TEXT, b"hi", masked=False), 1002),
        (client_frame(wsf.OP_TEXT, b"hi", rsv=0x40), 1002),  # compression not negotiated
        (client_frame(wsf.OP_TEXT, b"hi", rsv=0x20), 1002),
        (client_frame(0x3, b"hi"), 1002),
        (client_frame(wsf.OP_PING, b"x", fin=False), 1002),
        (client_frame(wsf.OP_PING, b"x" * 126), 1002),
        (client_frame(wsf.OP_CONT, b"x"), 1002),
        (client_frame(wsf.OP_TEXT, b"a", fin=False) + client_frame(wsf.OP_TEXT, b"b"), 1002),
        (client_frame(wsf.OP_TEXT, b"\xff\xfe"), 1007),
        (client_frame(wsf.OP_TEXT, b"\xe2\x82", fin=False) + client_frame(wsf.OP_CONT, b"x"), 1007),
        (client_frame(wsf.OP_CLOSE, b"\x03"), 1002),
        (client_frame(wsf.OP_CLOSE, struct.pack("!H", 1005)), 1002),
        (client_frame(wsf.OP_CLOSE, struct.pack("!H", 999)), 1002),
        (client_frame(wsf.OP_CLOSE, struct.pack("!H", 1000) + b"\xff"), 1007),
    ],
    ids=[
        "unmasked",
        "rsv1-unnegotiated",
        "rsv2",
        "reserved-opcode",
        "fragmented-ping",
        "long-ping",
        "orphan-continuation",
        "message-inside-message",
        "bad-utf8",
        "bad-utf8-across-fragments",
        "one-byte-close",
        "close-1005",
        "close-999",
        "close-reason-bad-utf8",
    ],
)
def test_protocol_violations_name_the_close_code(data, code):
    with pytest.raises(wsf.ProtocolError) as info:
        wsf.Reader(1 << 20).feed(data)
    assert info.value.code == code


def test_a_message_over_the_limit_is_refused_when_its_length_is_known():
    reader = wsf.Reader(1000)
    head = client_frame(wsf.OP_BINARY, b"x" * 1001)[:4]  # only the header has arrived
    with pytest.raises(wsf.ProtocolError) as info:
        reader.feed(head)
    assert info.value.code == 1009
    reader = wsf.Reader(1000)
    reader.feed(client_frame(wsf.OP_TEXT, b"x" * 600, fin=False))
    with pytest.raises(wsf.ProtocolError):
        reader.feed(client_frame(wsf.OP_CONT, b"x" * 600)[:8])


def test_close_frames_end_reading_and_carry_code_and_reason():
    reader = wsf.Reader(1 << 20)
    data = client_frame(wsf.OP_CLOSE, struct.pack("!H", 4000) + "bye ✓".encode()) + client_frame(wsf.OP_TEXT, b"after")
    assert reader.feed(data) == [wsf.CloseReceived(4000, "bye ✓")]
    assert wsf.Reader(10).feed(client_frame(wsf.OP_CLOSE, b"")) == [wsf.CloseReceived(1005, "")]


def test_compressed_client_messages_are_inflated_within_the_limit():
    deflate = wsf.negotiate_deflate("permessage-deflate")
    body = wsf.compress(b'{"op":"ping"}')
    reader = wsf.Reader(1 << 20, deflate)
    assert reader.feed(client_frame(wsf.OP_TEXT, body, rsv=0x40) * 2) == [wsf.Message('{"op":"ping"}')] * 2
    bomb = wsf.compress(b"\x00" * 5000)
    with pytest.raises(wsf.ProtocolError) as info:
        wsf.Reader(1000, deflate).feed(client_frame(wsf.OP_BINARY, bomb, rsv=0x40))
    assert info.value.code == 1009
    with pytest.raises(wsf.ProtocolError) as info:
        wsf.Reader(1000, deflate).feed(client_frame(wsf.OP_BINARY, b"not deflate", rsv=0x40))
    assert info.value.code == 1007
