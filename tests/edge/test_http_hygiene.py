"""HTTP hygiene on both engines, over real sockets: security headers, capped bodies, and slow
clients cut off (request heads sent byte by byte, bodies that never finish, idle keep-alives)."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import orjson
import pytest

from tests.support.timing import t
from tests.support.tokens import token


async def test_security_headers(edge_factory):
    edge = edge_factory()
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{edge.http}/") as resp:
            headers = resp.headers
        csp = headers["Content-Security-Policy"]
        directives = dict((d.split(" ", 1) + [""])[:2] for d in csp.split("; "))
        assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
        host = f"127.0.0.1:{edge.port}"
        assert directives["connect-src"] == f"'self' ws://{host} wss://{host}"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["X-Frame-Options"] == "DENY"
        assert "Strict-Transport-Security" not in headers  # plain HTTP: HSTS only with TLS

        auth = {"Authorization": f"Bearer {token('alice')}"}
        async with http.post(f"{edge.http}/ticket", headers=auth) as resp:
            assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
        async with http.post(f"{edge.http}/cmd", headers=auth, data=b"{}") as resp:
            assert resp.status == 400 and resp.headers["Cache-Control"] == "no-store"
        async with http.post(f"{edge.http}/cmd", data=b"{}") as resp:  # refusals too
            assert resp.status == 401 and resp.headers["Cache-Control"] == "no-store"
        async with http.get(f"{edge.http}/readyz") as resp:
            assert resp.headers["X-Content-Type-Options"] == "nosniff"

        # A Host that is not a plain host[:port] is never copied into the policy.
        async with http.get(f"{edge.http}/healthz", headers={"Host": "x; script-src *"}) as resp:
            assert resp.headers["Content-Security-Policy"].endswith("connect-src 'self'")


async def raw(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def response(reader: asyncio.StreamReader, timeout: float = 5) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), t(timeout))
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    body = b""
    if "content-length" in headers:
        body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), t(timeout))
    return status, headers, body


async def cut_off_within(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes, limit: float
) -> tuple[float, bytes]:
    """Send ``data`` one byte every 0.2 s until the server hangs up; return how long that took
    and what it answered. Fails if the server is still listening after ``limit`` seconds."""
    start = time.monotonic()
    answer = bytearray()

    async def read() -> None:
        while chunk := await reader.read(4096):
            answer.extend(chunk)

    reading = asyncio.ensure_future(read())
    try:
        for byte in data:
            if reading.done():
                break
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                break
            await asyncio.wait([reading], timeout=0.2)
        await asyncio.wait_for(reading, t(limit) - (time.monotonic() - start))
    except (TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()
    elapsed = time.monotonic() - start
    assert reading.done(), f"the server still listened after {elapsed:.1f} s"
    return elapsed, bytes(answer)


SLOW_HEAD = b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Slow: " + b"a" * 200 + b"\r\n\r\n"


async def test_a_request_head_sent_byte_by_byte_is_cut_off(edge_factory, engine):
    # The direct engine's front door answers 408 after EDGE_HEAD_TIMEOUT_S; on the quart engine
    # Hypercorn counts the connection idle until its head is complete, so EDGE_KEEP_ALIVE_S cuts it.
    edge = edge_factory(EDGE_HEAD_TIMEOUT_S="1", EDGE_KEEP_ALIVE_S="1")
    reader, writer = await raw(edge.port)
    elapsed, answer = await cut_off_within(reader, writer, SLOW_HEAD, 6)
    assert elapsed < t(6)
    if engine == "direct":
        assert answer.startswith(b"HTTP/1.1 408 ")
    else:
        assert answer == b""  # Hypercorn hangs up without an answer
    # ... and the edge serves everyone else meanwhile.
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{edge.http}/readyz") as resp:
            assert resp.status == 200


async def test_an_idle_keep_alive_connection_is_closed(edge_factory):
    # After a first request, the next head is Hypercorn's to wait for on both engines.
    edge = edge_factory(EDGE_HEAD_TIMEOUT_S="30", EDGE_KEEP_ALIVE_S="1")
    reader, writer = await raw(edge.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    status, headers, _ = await response(reader)
    assert status == 200
    elapsed, answer = await cut_off_within(reader, writer, SLOW_HEAD, 6)
    assert answer == b"" and elapsed < t(6)


async def test_a_request_head_growing_past_16_kib_gets_431(edge_factory):
    # The server buffers at most 16 KiB of an unfinished head (wsframes.MAX_HEAD, and Hypercorn's
    # h11_max_incomplete_size set to the same), whatever the engine.
    edge = edge_factory()
    reader, writer = await raw(edge.port)
    writer.write(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Big: " + b"a" * 17000)
    status, _, _ = await response(reader)
    assert status == 431
    writer.close()


@pytest.mark.engines("direct")
async def test_a_whole_request_head_over_16_kib_gets_431_however_it_arrives(edge_factory, engine):
    edge = edge_factory()
    reader, writer = await raw(edge.port)
    writer.write(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Big: " + b"a" * 17000 + b"\r\n\r\n")
    status, headers, body = await response(reader)
    assert status == 431 and headers["content-type"].startswith("text/plain") and body
    writer.close()


def post(path: str, body: bytes, *, length: int | None = None, chunked: bool = False) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token('alice')}\r\n"
    head += (
        "Transfer-Encoding: chunked\r\n"
        if chunked
        else f"Content-Length: {len(body) if length is None else length}\r\n"
    )
    return head.encode() + b"\r\n" + body


async def test_request_bodies_are_capped(edge_factory):
    edge = edge_factory(EDGE_MAX_BODY_BYTES="4096")
    for path in ("/cmd", "/ticket", "/poll"):
        # Announced too large: refused before a byte of the body is read.
        reader, writer = await raw(edge.port)
        writer.write(post(path, b"", length=10_000_000))
        status, headers, body = await response(reader)
        assert status == 413, (path, body)
        assert orjson.loads(body)["code"] == 103 and headers["content-type"] == "application/json"
        writer.close()

    # Chunked: cut off once the body grows past the cap, whatever it claims.
    reader, writer = await raw(edge.port)
    chunk = b"a" * 1000
    writer.write(post("/cmd", b"", chunked=True))
    for _ in range(10):
        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    writer.write(b"0\r\n\r\n")
    status, _, body = await response(reader)
    assert status == 413 and orjson.loads(body)["code"] == 103
    writer.close()

    # Under the cap, a command is still a command.
    reader, writer = await raw(edge.port)
    writer.write(post("/cmd", orjson.dumps({"id": 1, "name": "nope", "data": {}})))
    status, _, body = await response(reader)
    assert status == 400 and orjson.loads(body)["code"] == 104  # unknown command: the body was read
    writer.close()


async def test_a_body_that_does_not_arrive_in_time_gets_408(edge_factory):
    edge = edge_factory(EDGE_BODY_TIMEOUT_S="1")
    reader, writer = await raw(edge.port)
    body = orjson.dumps({"id": 1, "name": "order.submit", "data": {}})
    writer.write(post("/cmd", b"", length=len(body)) + body[:3])
    started = time.monotonic()
    status, headers, answer = await response(reader, timeout=6)
    assert status == 408 and time.monotonic() - started < t(6)
    assert orjson.loads(answer)["code"] == 401
    assert headers["cache-control"] == "no-store"
    writer.close()
