"""The load client: one process holding many WebSocket connections (picows on uvloop).

A :class:`Worker` runs in its own process and obeys commands from the coordinator
(:mod:`tickmesh.ops.bench.pool`). Each connection speaks one protocol through a codec
(:mod:`tickmesh.ops.bench.protocols`), subscribes to its channels, and from then on only looks
for send timestamps in what it receives: one regex over the raw bytes per WebSocket message, one
histogram update per message found. Nothing is JSON-decoded on the receive path, which keeps the
client's CPU per received message well below the servers' (the table reports it).

Guarantees: a connection counts as *ready* only once every subscription was acknowledged;
latency is recorded only for messages sent inside the window (``reset`` .. ``cutoff``) and only
on connections still measured (a paused "slow consumer" is not). Sockets bind to the given
127.0.0.x source addresses round-robin, so more than ~28,000 connections fit per server port.
"""

from __future__ import annotations

import asyncio
import random
import resource
import socket
import time
from typing import Any

from picows import WSListener, WSMsgType, WSTransport, ws_connect

from . import ipc
from .latency import Histogram
from .protocols import CODECS, TIMESTAMP_KEYS, Codec

SLOW_RCVBUF = 4096  # bytes: a paused slow consumer's receive window fills after a few messages


def raise_nofile() -> int:
    """Raise this process's soft descriptor limit to the hard limit; returns the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class Conn(WSListener):
    """One client connection: handshake through its codec, then count and time messages."""

    def __init__(self, worker: "Worker", index: int, channels: list[str], slow: bool) -> None:
        super().__init__()
        self.worker = worker
        self.index = index
        self.channels = channels
        self.slow = slow
        self.measure = True
        self.codec: Codec | None = None
        self.transport: WSTransport | None = None
        self.handshaking = True
        self.ready_at = 0.0  # wall clock of the last time every subscription was acknowledged
        self.attempt = 0
        self.close_code: int | None = None

    # -- picows callbacks ------------------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.handshaking = True
        self.codec = self.worker.codec_for(self)
        for msg in self.codec.hello():
            transport.send(WSMsgType.TEXT, msg)

    def on_ws_frame(self, transport: WSTransport, frame: Any) -> None:
        kind = frame.msg_type
        if kind is WSMsgType.CLOSE:
            self.close_code = frame.get_close_code()
            transport.send_close(frame.get_close_code())
            transport.disconnect()
            return
        if kind is WSMsgType.PING:
            return  # auto-pong is on
        payload = frame.get_payload_as_bytes()
        worker = self.worker
        codec = self.codec
        if self.handshaking:
            for reply in codec.feed(payload):
                transport.send(WSMsgType.TEXT, reply)
            if codec.ready:
                self.handshaking = False
                self.ready_at = time.time()
                worker.on_ready(self, codec.failed == 0)
        if self.measure and worker.record(payload):
            return
        if not self.handshaking:
            reply = codec.pong(payload)
            if reply is not None:
                transport.send(WSMsgType.TEXT, reply)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.transport = None
        self.worker.on_disconnected(self)


class Worker:
    """The connections of one process and the commands that drive them."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.conns: list[Conn] = []
        self.hist = Histogram()
        self.received = 0
        self.since_us = 0
        self.until_us = 1 << 62
        self.armed_at = 0.0
        self.find = TIMESTAMP_KEYS["bt"].findall
        self.protocol = "tickmesh"
        self.url = ""
        self.secret: str | None = None
        self.sources: list[str] = ["127.0.0.1"]
        self.reconnect = False
        self.closing = False
        self.closed_by_server = 0
        self.close_codes: dict[int, int] = {}
        self.errors: dict[str, int] = {}
        self.ready = 0
        self._ready_waiters: list[asyncio.Future] = []
        self._sem: asyncio.Semaphore | None = None
        self._keepalive: asyncio.Task | None = None

    def record(self, payload: bytes) -> bool:
        """Count and time every send timestamp in ``payload`` that falls inside the window;
        True if ``payload`` held any timestamp at all (it was a data message)."""
        found = self.find(payload)
        if not found:
            return False
        now = time.time_ns() // 1000
        since, until, hist = self.since_us, self.until_us, self.hist
        n = 0
        for raw in found:
            sent = int(raw)
            if since <= sent <= until:
                hist.record(now - sent)
                n += 1
        self.received += n
        return True

    # -- connection life cycle -------------------------------------------------------------

    def codec_for(self, conn: Conn) -> Codec | None:
        if self.protocol == "sse":
            return None  # the SSE adapter handles its own handshake
        token = None
        if self.secret is not None:
            from tickmesh import devtokens

            secret, user = self.secret, f"bench-{self.number}-{conn.index}"
            token = lambda: devtokens.mint(user, secret=secret, ttl=3600)  # noqa: E731
        return CODECS[self.protocol](conn.channels, token)

    def _socket_for(self, conn: Conn) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        if conn.slow:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RCVBUF)
        sock.bind((self.sources[conn.index % len(self.sources)], 0))
        return sock

    async def _connect(self, conn: Conn) -> bool:
        assert self._sem is not None
        async with self._sem:
            try:
                if self.protocol == "sse":
                    from .sse import open_sse

                    await open_sse(conn, self.url, self._socket_for(conn), self.secret)
                    return True
                await ws_connect(lambda: conn, self.url, socket_factory=lambda _url: self._socket_for(conn),
                                 websocket_handshake_timeout=30, enable_auto_pong=True,
                                 read_buffer_init_size=4096)
                return True
            except Exception as exc:  # counted and reported, never raised into the run
                key = f"{type(exc).__name__}: {str(exc)[:80]}"
                self.errors[key] = self.errors.get(key, 0) + 1
                return False

    def on_ready(self, conn: Conn, ok: bool) -> None:
        if ok:
            self.ready += 1
        else:
            self.errors["subscription refused"] = self.errors.get("subscription refused", 0) + 1
        conn.attempt = 0

    def on_disconnected(self, conn: Conn) -> None:
        if self.closing:
            return
        self.closed_by_server += 1
        if conn.close_code is not None:
            self.close_codes[conn.close_code] = self.close_codes.get(conn.close_code, 0) + 1
            conn.close_code = None
        if not conn.handshaking:
            self.ready -= 1
        if self.reconnect:
            asyncio.get_running_loop().create_task(self._reconnect(conn))

    async def _reconnect(self, conn: Conn) -> None:
        """Full-jitter exponential backoff (0.1 s doubling, capped at 2 s), until connected."""
        while not self.closing:
            delay = random.uniform(0, min(2.0, 0.1 * 2 ** conn.attempt))
            conn.attempt += 1
            await asyncio.sleep(delay)
            if await self._connect(conn):
                return

    async def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pending = sum(1 for c in self.conns if c.transport is not None and c.handshaking)
            if not pending:
                return
            await asyncio.sleep(0.05)

    async def _keepalive_loop(self, period: float = 10.0) -> None:
        while True:
            await asyncio.sleep(period)
            for conn in self.conns:
                codec, transport = conn.codec, conn.transport
                if transport is not None and codec is not None and codec.keepalive is not None:
                    transport.send(WSMsgType.TEXT, codec.keepalive)

    # -- commands --------------------------------------------------------------------------

    async def cmd_connect(self, url: str, protocol: str, conns: list, sources: list[str], secret: str | None,
                          key: str = "bt", concurrency: int = 100, reconnect: bool = False,
                          timeout: float = 60.0) -> dict:
        self.url, self.protocol, self.secret = url, protocol, secret
        self.sources = sources or ["127.0.0.1"]
        self.reconnect = reconnect
        self.find = TIMESTAMP_KEYS[key].findall
        self._sem = asyncio.Semaphore(concurrency)
        new = [Conn(self, index, channels, slow) for index, channels, slow in conns]
        self.conns.extend(new)
        started = time.monotonic()
        results = await asyncio.wait_for(asyncio.gather(*(self._connect(c) for c in new)), timeout)
        await self._wait_ready(max(1.0, timeout - (time.monotonic() - started)))
        if self._keepalive is None:
            self._keepalive = asyncio.get_running_loop().create_task(self._keepalive_loop())
        return {"connected": sum(results), "failed": len(new) - sum(results),
                "ready": sum(1 for c in new if not c.handshaking), "seconds": time.monotonic() - started,
                "errors": dict(self.errors)}

    async def cmd_reset(self, since_us: int) -> dict:
        self.hist = Histogram()
        self.received = 0
        self.since_us = since_us
        self.until_us = 1 << 62
        return {}

    async def cmd_cutoff(self, until_us: int) -> dict:
        """Messages sent after ``until_us`` no longer count (the measured window has ended)."""
        self.until_us = until_us
        return {}

    async def cmd_peek(self) -> dict:
        return {"received": self.received, "ready": self.ready, "open": self._open(),
                "ready_since_armed": sum(1 for c in self.conns if c.transport is not None and not c.handshaking
                                         and c.ready_at >= self.armed_at),
                "last_ready_at": max((c.ready_at for c in self.conns), default=0.0)}

    async def cmd_arm(self) -> dict:
        """Start counting re-subscriptions from now (reconnect storm)."""
        self.armed_at = time.time()
        self.errors.clear()
        return {}

    async def cmd_pause(self) -> dict:
        """Slow consumers stop reading: their sockets' receive windows fill up."""
        paused = 0
        for conn in self.conns:
            if conn.slow and conn.transport is not None:
                conn.measure = False
                conn.transport.underlying_transport.pause_reading()
                paused += 1
        return {"paused": paused}

    async def cmd_collect(self) -> dict:
        measured = sum(1 for c in self.conns if c.measure and not c.handshaking and c.transport is not None)
        return {"hist": self.hist.to_dict(), "received": self.received, "ready": self.ready,
                "open": self._open(), "measured": measured, "closed_by_server": self.closed_by_server,
                "close_codes": dict(self.close_codes), "errors": dict(self.errors)}

    async def cmd_close(self) -> dict:
        self.closing = True
        if self._keepalive is not None:
            self._keepalive.cancel()
        for conn in self.conns:
            if conn.transport is not None:
                conn.transport.disconnect(graceful=False)
        await asyncio.sleep(0.2)
        n = len(self.conns)
        self.conns.clear()
        self.closing = False
        self.ready = 0
        self.closed_by_server = 0
        self.close_codes.clear()
        self.errors.clear()
        return {"closed": n}

    def _open(self) -> int:
        return sum(1 for c in self.conns if c.transport is not None)


async def serve(conn: Any, number: int) -> None:
    """Obey commands from the coordinator until ``exit``."""
    worker = Worker(number)
    while True:
        cmd = await ipc.recv(conn)
        op, seq = cmd.pop("op"), cmd.pop("seq")
        if op == "exit":
            await worker.cmd_close()
            conn.send({"seq": seq})
            return
        try:
            reply = await getattr(worker, f"cmd_{op}")(**cmd)
        except Exception as exc:  # report to the coordinator instead of dying silently
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        conn.send({**reply, "seq": seq})


def process_main(conn: Any, number: int) -> None:
    """Entry point of a load-client process (started with the spawn method)."""
    import uvloop

    raise_nofile()
    uvloop.run(serve(conn, number))
