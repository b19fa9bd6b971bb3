"""The direct engine's frames, checked by independent clients over real sockets: websockets,
aiohttp and a bare socket (Chromium checks the same in web/e2e/ws-conformance.test.mjs).

Each server message is framed once and the same bytes go to every subscriber; these tests check
what a client sees of that: text and binary frames, every length encoding, batches, close frames
with code and reason, the server's heartbeat, and the answers RFC 6455 requires to fragmented,
interleaved and invalid client frames."""

import asyncio
import json
import struct

import aiohttp
import msgpack
import nats
import pytest
import websockets

from tests.support.rawws import RawWebSocket, client_frame
from tests.support.timing import t
from tests.support.tokens import token
from tickmesh.contracts.channels import tick_subject
from tickmesh.contracts.codes import CloseCode
from tickmesh.edge import wsframes as wsf

PREFIX = b'{"op":"msg","ch":"prices:AAPL","seq":%d,"data":'
LENGTHS = (125, 126, 65535, 65536)

pytestmark = pytest.mark.engines("direct")  # the direct engine's own write path


def payload_for(length: int, seq: int) -> bytes:
    """A tick whose msg frame is exactly ``length`` bytes long."""
    base = len(PREFIX % seq) + 1 + len(b'{"symbol":"AAPL","last":"1.00","pad":""}')
    return json.dumps({"symbol": "AAPL", "last": "1.00", "pad": "x" * (length - base)}, separators=(",", ":")).encode()


@pytest.fixture
async def nc(nats_mon):
    client = await nats.connect(nats_mon.url)
    yield client
    await client.close()


@pytest.fixture
def direct(edge_factory):
    # A long flush tick, so that frames published together surely leave as one batch.
    return edge_factory(EDGE_HEARTBEAT_S="1", EDGE_FLUSH_MS="100")


async def publish(nc, seq: int, payload: bytes) -> None:
    await nc.publish(tick_subject("AAPL"), payload, headers={"Tm-Seq": str(seq)})
    await nc.flush()


async def test_websockets_client_sees_exact_text_lengths_binary_batches_and_heartbeats(direct, nc):
    async with websockets.connect(direct.ws_url, max_size=2**20, compression=None) as ws:
        await ws.send(json.dumps({"op": "auth", "id": 1, "token": token()}))
        assert json.loads(await ws.recv())["op"] == "welcome"
        await ws.send(json.dumps({"op": "sub", "id": 2, "ch": "prices:AAPL"}))
        assert json.loads(await ws.recv()) == {"op": "ok", "id": 2}
        for seq, length in enumerate(LENGTHS, start=1):
            await publish(nc, seq, payload_for(length, seq))
            while True:  # answer the server's heartbeat pings (1 s here) as any client must
                message = await asyncio.wait_for(ws.recv(), t(5))
                if json.loads(message)["op"] == "msg":
                    break
                await ws.send(json.dumps({"op": "pong"}))
            assert isinstance(message, str) and len(message.encode()) == length
            assert json.loads(message)["seq"] == seq
        # The server's heartbeat is an app-level ping; answering it keeps the connection.
        while json.loads(await asyncio.wait_for(ws.recv(), t(5)))["op"] != "ping":
            pass
        await ws.send(json.dumps({"op": "pong"}))
        # Several frames due within one flush tick leave as one message: a JSON array.
        for seq in range(10, 14):
            await nc.publish(tick_subject("AAPL"), payload_for(200, seq), headers={"Tm-Seq": str(seq)})
        await nc.flush()
        seen, batches = [], 0
        while not any(f.get("seq") == 13 for f in seen):
            obj = json.loads(await asyncio.wait_for(ws.recv(), t(5)))
            batches += isinstance(obj, list)
            seen += obj if isinstance(obj, list) else [obj]
            if any(f["op"] == "ping" for f in (obj if isinstance(obj, list) else [obj])):
                await ws.send(json.dumps({"op": "pong"}))
        assert batches >= 1 and [f["seq"] for f in seen if f["op"] == "msg"] == [10, 11, 12, 13]
        # The client's own RFC ping is answered with a pong.
        await asyncio.wait_for(await ws.ping(b"are you there"), t(5))

    async with websockets.connect(direct.ws_url, subprotocols=["tickmesh.v1.msgpack"], compression=None) as ws:
        assert ws.subprotocol == "tickmesh.v1.msgpack"
        await ws.send(msgpack.packb({"op": "auth", "id": 1, "token": token()}))
        welcome = await ws.recv()
        assert isinstance(welcome, bytes) and msgpack.unpackb(welcome)["op"] == "welcome"
        await ws.send(msgpack.packb({"op": "sub", "id": 2, "ch": "prices:AAPL"}))
        frames = []
        while not any(f.get("op") == "msg" for f in frames):
            obj = msgpack.unpackb(await asyncio.wait_for(ws.recv(), t(5)))
            frames += obj if isinstance(obj, list) else [obj]
        assert frames[0] == {"op": "ok", "id": 2} and frames[-1]["data"]["symbol"] == "AAPL"


async def test_aiohttp_client_sees_exact_lengths_and_a_close_with_code_and_reason(edge_factory, nc):
    edge = edge_factory(EDGE_AUTH_TIMEOUT_S="1")
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(edge.ws_url, max_msg_size=2**20, autoping=False) as ws:
            await ws.send_json({"op": "auth", "id": 1, "token": token()})
            assert (await ws.receive_json())["op"] == "welcome"
            await ws.send_json({"op": "sub", "id": 2, "ch": "prices:AAPL"})
            assert await ws.receive_json() == {"op": "ok", "id": 2}
            for seq, length in enumerate(LENGTHS, start=1):
                await publish(nc, 100 + seq, payload_for(length, 100 + seq))
                msg = await ws.receive(timeout=t(5))
                assert msg.type == aiohttp.WSMsgType.TEXT and len(msg.data.encode()) == length
            await ws.ping(b"x")
            msg = await ws.receive(timeout=t(5))
            assert msg.type == aiohttp.WSMsgType.PONG and msg.data == b"x"
        # A connection that never authenticates is closed with 4004 and the reason.
        async with session.ws_connect(edge.ws_url) as ws:
            msg = await ws.receive(timeout=t(5))
            assert msg.type == aiohttp.WSMsgType.CLOSE
            assert (msg.data, msg.extra) == (CloseCode.AUTH_TIMEOUT, "no auth frame in time")


async def test_fragmented_and_interleaved_client_frames_are_answered_as_rfc_6455_says(direct):
    ws = await RawWebSocket.connect(direct.ws_url)
    assert ws.response.startswith("HTTP/1.1 101 ")
    # A text message in three fragments, with a ping and a pong between them.
    await ws.send(
        client_frame(wsf.OP_TEXT, b'{"op":"pi', fin=False)
        + client_frame(wsf.OP_PING, b"mid")
        + client_frame(wsf.OP_CONT, b'ng","id"', fin=False)
        + client_frame(wsf.OP_PONG, b"")
        + client_frame(wsf.OP_CONT, b":7}")
    )
    assert await ws.frame() == (wsf.OP_PONG, b"mid")
    opcode, body = await ws.frame()
    assert opcode == wsf.OP_TEXT and json.loads(body) == {"op": "pong", "id": 7}
    # Invalid UTF-8 in a text message: close 1007, then the server hangs up.
    await ws.send(client_frame(wsf.OP_TEXT, b'{"op":"\xff"}'))
    assert (await ws.close_frame())[0] == 1007
    await ws.send(client_frame(wsf.OP_CLOSE, struct.pack("!H", 1007)))
    assert await ws.eof()
    ws.close()

    ws = await RawWebSocket.connect(direct.ws_url)
    await ws.send(client_frame(wsf.OP_CONT, b"orphan"))
    assert (await ws.close_frame())[0] == 1002
    ws.close()

    # A client that closes first gets its code echoed, and the server hangs up.
    ws = await RawWebSocket.connect(direct.ws_url)
    await ws.send(client_frame(wsf.OP_CLOSE, struct.pack("!H", 1000) + b"bye"))
    assert await ws.close_frame() == (1000, "")
    assert await ws.eof()
    ws.close()


async def test_handshakes_the_engine_refuses(direct):
    ws = await RawWebSocket.connect(direct.ws_url, subprotocol="graphql-ws")
    assert ws.response.startswith("HTTP/1.1 400 ")
    ws.close()
    ws = await RawWebSocket.connect(direct.ws_url, extra="Origin: https://evil.example\r\n")
    assert ws.response.startswith("HTTP/1.1 403 ")
    ws.close()
    # Anything that is not a /ws upgrade is Quart's, on the same port.
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{direct.http}/healthz") as resp:
            assert resp.status == 200 and (await resp.json())["status"] == "alive"
        async with session.get(f"{direct.http}/ws") as resp:
            assert resp.status in (400, 404, 405, 426)


async def test_a_message_over_the_hard_limit_closes_with_1009_before_it_is_read_whole(edge_factory):
    edge = edge_factory(EDGE_MAX_FRAME_BYTES="1000", EDGE_HARD_FRAME_BYTES="20000")
    ws = await RawWebSocket.connect(edge.ws_url)
    await ws.send(client_frame(wsf.OP_TEXT, b"x" * 20001)[:14])  # the header alone
    assert (await ws.close_frame())[0] == 1009
    ws.close()


async def test_a_client_that_sends_its_head_byte_by_byte_is_cut_off(edge_factory):
    edge = edge_factory(EDGE_HEAD_TIMEOUT_S="1")
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
    for byte in b"GET /ws HTTP/1.1\r\nHost":  # a trickle, then nothing more
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0.02)
    answer = await asyncio.wait_for(reader.read(), t(5))
    assert answer.startswith(b"HTTP/1.1 408 ")
    writer.close()
