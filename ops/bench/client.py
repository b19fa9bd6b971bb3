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

With ``track`` (the reconnect storm), each connection also keeps its position on one event
channel (:class:`tickmesh.ops.bench.positions.Position`): it resubscribes with ``since`` after a
drop, and counts gaps and duplicates by stream position (one more regex per message).
"""

from __future__ import annotations

import asyncio
import random
import resource
import socket
import time
from typing import Any

from picows import WSListener, WSMsgType, WSTransport, ws_connect

from tickmesh.contracts.codes import ERRORS

from . import ipc
from .latency import Histogram
from .positions import Position, msg_seqs
from .protocols import CODECS, TIMESTAMP_KEYS, Codec, ResumingCodec

RETRYABLE = frozenset(info.code for info in ERRORS.values() if info.retry)  # err codes to retry

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)  # Linux >= 4.2
SLOW_RCVBUF = 4096  # bytes: a paused slow consumer's receive window fills after a few messages


def raise_nofile() -> int:
    """Raise this process's soft descriptor limit to the hard limit; returns the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class Conn(WSListener):
    """One client connection: handshake through its codec, then count and time messages."""

    def __init__(self, worker: Worker, index: int, channels: list[str], slow: bool) -> None:
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
        self.track: Position | None = Position() if worker.find_seqs is not None else None
        self.retired = False  # closed by ``close``: no longer the worker's, never reconnected

    # -- picows callbacks ------------------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        if self.retired:  # a connect that was under way when its run ended
            transport.disconnect(graceful=False)
            return
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
            if self.track is not None and (codec.oks or codec.errs):
                worker.on_sub_reply(self, transport, codec)
            if codec.ready:
                self.handshaking = False
                self.ready_at = time.time()
                worker.on_ready(self, codec.failed == 0)
        if self.track is not None:
            seqs = worker.find_seqs(payload)
            if seqs:
                self.track.on_msgs(seqs, time.time())
        if self.measure:
            worker.record(payload)
        if not self.handshaking:  # a server ping may come in a batch with data: answer it anyway
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
        self.find_seqs: Any = None  # set when connections track an event channel (storm)
        self.track_channel: str | None = None
        self.upto = 0  # the storm's cut-off position: every tracking client must reach it
        self.not_recovered: dict[str, int] = {}  # reason -> ok replies with recovered: false
        self.resumes = 0  # ok replies to subscriptions with since
        self.sub_errors: dict[str, int] = {}  # err code -> err replies to the tracked channel's sub
        self.replayed = 0  # messages those replies said were replayed
        self.closing = False
        self.closed_by_server = 0
        self.close_codes: dict[int, int] = {}
        self.errors: dict[str, int] = {}
        self.ready = 0
        self._ready_waiters: list[asyncio.Future] = []
        self._sem: asyncio.Semaphore | None = None
        self._keepalive: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()

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
        if conn.track is not None and self.protocol == "tickmesh":
            return ResumingCodec(conn.channels, token, self.track_channel, conn.track.since)
        return CODECS[self.protocol](conn.channels, token)

    def on_sub_reply(self, conn: Conn, transport: WSTransport, codec: ResumingCodec) -> None:
        """The tracked channel's ok (positions) or err (counted by code; a retryable one, such
        as 501 "history unavailable; retry", makes the sub again after a full-jitter backoff, as
        a client honouring the protocol would)."""
        now, oks = time.time(), codec.oks
        for ok in oks:
            if conn.track.epoch is not None:  # a resubscription with since
                self.resumes += 1
                self.replayed += int(ok.get("replayed") or 0)
            if not conn.track.on_ok(ok, now):
                reason = str(ok.get("reason"))
                self.not_recovered[reason] = self.not_recovered.get(reason, 0) + 1
        oks.clear()
        for err in codec.errs:
            code = str(err.get("code"))
            self.sub_errors[code] = self.sub_errors.get(code, 0) + 1
            if err.get("code") in RETRYABLE:
                self._spawn(self._resubscribe(conn, transport, codec))
        codec.errs.clear()

    async def _resubscribe(self, conn: Conn, transport: WSTransport, codec: ResumingCodec) -> None:
        await asyncio.sleep(random.uniform(0, min(2.0, 0.1 * 2**codec.retries)))
        if conn.transport is transport and conn.codec is codec and not self.closing:
            conn.handshaking = True
            transport.send(WSMsgType.TEXT, codec.retry())

    def _socket_for(self, conn: Conn) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        if conn.slow:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RCVBUF)
        # the port is picked at connect time for the whole address pair, not at bind time for the
        # source address alone: sockets to different servers (and ports still in TIME_WAIT from an
        # earlier run against another port) then do not use up each other's ephemeral ports
        sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
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
                await ws_connect(
                    lambda: conn,
                    self.url,
                    socket_factory=lambda _url: self._socket_for(conn),
                    websocket_handshake_timeout=30,
                    enable_auto_pong=True,
                    read_buffer_init_size=4096,
                )
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
        if self.closing or conn.retired:
            return
        self.closed_by_server += 1
        if conn.close_code is not None:
            self.close_codes[conn.close_code] = self.close_codes.get(conn.close_code, 0) + 1
            conn.close_code = None
        if not conn.handshaking:
            self.ready -= 1
        if self.reconnect:
            self._spawn(self._reconnect(conn))

    def _spawn(self, coro: Any) -> None:
        """A reconnect or resubscribe task, cancelled by ``close`` (it must not outlive its run)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reconnect(self, conn: Conn) -> None:
        """Full-jitter exponential backoff (0.1 s doubling, capped at 2 s), until connected."""
        while not self.closing:
            delay = random.uniform(0, min(2.0, 0.1 * 2**conn.attempt))
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

    async def _keepalive_loop(self, period: float = 10.0, slices: int = 20) -> None:
        """Every connection sends its codec's keepalive once per ``period``, spread over the
        period in ``slices`` (a burst from 19,000 connections at once would be a load spike on
        the server that no real population of clients makes)."""
        k = 0
        while True:
            await asyncio.sleep(period / slices)
            k = (k + 1) % slices
            for conn in self.conns[k::slices]:
                codec, transport = conn.codec, conn.transport
                if transport is not None and codec is not None and codec.keepalive is not None:
                    transport.send(WSMsgType.TEXT, codec.keepalive)

    # -- commands --------------------------------------------------------------------------

    async def cmd_connect(
        self,
        url: str,
        protocol: str,
        conns: list,
        sources: list[str],
        secret: str | None,
        key: str = "bt",
        concurrency: int = 100,
        reconnect: bool = False,
        timeout: float = 60.0,
        track: str | None = None,
    ) -> dict:
        self.url, self.protocol, self.secret = url, protocol, secret
        self.track_channel = track
        self.find_seqs = msg_seqs(track) if track and protocol == "tickmesh" else None
        self.sources = sources or ["127.0.0.1"]
        self.reconnect = reconnect
        self.find = TIMESTAMP_KEYS[key].findall
        self._sem = asyncio.Semaphore(concurrency)
        new = [Conn(self, index, channels, slow) for index, channels, slow in conns]
        self.conns.extend(new)
        started = time.monotonic()
        tasks = [asyncio.ensure_future(self._connect(c)) for c in new]
        done, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:  # the row reports them as failed, with the rest measured
            task.cancel()
        if pending:
            self.errors["connect phase timed out"] = self.errors.get("connect phase timed out", 0) + len(pending)
        results = [t.result() for t in done]
        await self._wait_ready(max(1.0, timeout - (time.monotonic() - started)))
        if self._keepalive is None:
            self._keepalive = asyncio.get_running_loop().create_task(self._keepalive_loop())
        return {
            "connected": sum(results),
            "failed": len(new) - sum(results),
            "ready": sum(1 for c in new if not c.handshaking),
            "seconds": time.monotonic() - started,
            "errors": dict(self.errors),
        }

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
        out = {
            "received": self.received,
            "ready": self.ready,
            "open": self._open(),
            "ready_since_armed": sum(
                1 for c in self.conns if c.transport is not None and not c.handshaking and c.ready_at >= self.armed_at
            ),
            "last_ready_at": max((c.ready_at for c in self.conns), default=0.0),
        }
        if self.find_seqs is not None:
            armed, upto = self.armed_at, self.upto
            tracks = [c.track for c in self.conns if c.transport is not None and not c.handshaking]
            out["subscribed_since_armed"] = sum(1 for t in tracks if t.ok_at >= armed)
            out["last_ok_at"] = max((t.ok_at for t in tracks), default=0.0)
            out["recovered_since_armed"] = sum(1 for t in tracks if t.recovered_at >= armed)
            out["last_recovered_at"] = max((t.recovered_at for t in tracks), default=0.0)
            out["caught_up"] = sum(1 for c in self.conns if c.track.caught_up(upto)) if upto else 0
        return out

    async def cmd_arm(self, url: str | None = None) -> dict:
        """Start counting re-subscriptions from now (reconnect storm); reconnects go to ``url``
        from now on, if given (a second edge)."""
        self.armed_at = time.time()
        if url:
            self.url = url
        self.errors.clear()
        return {}

    async def cmd_upto(self, position: int) -> dict:
        """The storm's cut-off: every tracking connection must receive positions up to ``position``."""
        self.upto = position
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
        out = {
            "hist": self.hist.to_dict(),
            "received": self.received,
            "ready": self.ready,
            "open": self._open(),
            "measured": measured,
            "closed_by_server": self.closed_by_server,
            "close_codes": dict(self.close_codes),
            "errors": dict(self.errors),
        }
        if self.find_seqs is not None:
            tracks = [c.track for c in self.conns]
            gaps = [t.gaps(self.upto) for t in tracks]
            behind = [not t.caught_up(self.upto) for t in tracks]
            out["track"] = {
                "gaps": sum(gaps),
                "clients_with_gaps": sum(1 for g in gaps if g),
                "silent_gaps": sum(g for g, b in zip(gaps, behind, strict=True) if not b),
                "clients_with_silent_gaps": sum(1 for g, b in zip(gaps, behind, strict=True) if g and not b),
                "duplicates": sum(t.dups for t in tracks),
                "early": sum(t.early for t in tracks),
                "caught_up": sum(1 for t in tracks if t.caught_up(self.upto)),
                "resumes": self.resumes,
                "replayed": self.replayed,
                "sub_errors": dict(self.sub_errors),
                "gap_samples": [
                    {"client": c.index, "first_gap": c.track.first_gap(self.upto), "last_ok": c.track.last_ok}
                    for c, g in zip(self.conns, gaps, strict=True)
                    if g
                ][:3],
                "not_recovered": dict(self.not_recovered),
            }
        return out

    async def cmd_close(self) -> dict:
        self.closing = True
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None
        for task in list(self._tasks):
            task.cancel()
        for conn in self.conns:
            conn.retired = True
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
        self.find_seqs, self.track_channel, self.upto = None, None, 0
        self.not_recovered.clear()
        self.resumes = self.replayed = 0
        self.sub_errors.clear()
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
