"""Fallback transports over plain HTTP: SSE, long polling, commands, and the tickets they use.

Each runs a :class:`Connection` (the same session core, permissions, limits and frames as the
WebSocket) and only differs in how frames leave: SSE writes them as ``text/event-stream``
events, a long poll returns them as one JSON batch. Positions travel in a :mod:`cursor`, so a
client continues on any edge and the server keeps nothing between requests.

Every endpoint passes the edge's :mod:`admission` like a WebSocket does (revocation, connection
limits, rate limits), and refuses with the same codes: an ``err`` body carrying the code the
WebSocket would close or answer with, and the HTTP status the code table gives.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
from quart import Quart, Response, request

from tickmesh.contracts.channels import ChannelError, parse_channel
from tickmesh.contracts.codes import ErrorCode, http_status

from . import cursor as cursors
from .admission import Refusal
from .connection import Connection
from .frames import JSON
from .identity import AuthFailure, Identity
from .session import MAX_HISTORY, RunCommand, Session
from .state import EdgeState
from .tickets import TicketError
from .ws import bearer_token

MAX_CHANNELS = 64


def _error(code: int, reason: str, status: int | None = None) -> tuple[dict, int]:
    """An HTTP refusal: an ``err`` body with ``code`` and the status the code table gives."""
    return {"op": "err", "code": int(code), "reason": reason}, status or http_status(int(code))


def _refused(refusal: Refusal) -> tuple[dict, int]:
    return refusal.frame(), refusal.http_status


class _Stream:
    """Tracks what a fallback client has: each channel's epoch and last position, as a cursor."""

    def __init__(self, channels: list[str], known: cursors.Positions, history: dict[str, int] | None = None) -> None:
        self.channels = channels
        self.first = not known  # a stream's first request: no cursor yet
        self.positions: cursors.Positions = {ch: known[ch] for ch in channels if ch in known}
        self.state = {ch: parse_channel(ch).kind.conflates for ch in channels}
        self.history = history or {}

    def sub_frames(self) -> list[bytes]:
        """The ``sub`` of each channel: from its position when the cursor has one (``since``),
        else with the ``history`` asked for (the same as a WebSocket's first subscription; a
        resumed stream never replays history again, its cursor has positions by then)."""
        out = []
        for ch in self.channels:
            frame: dict[str, Any] = {"op": "sub", "id": ch, "ch": ch}
            pos = self.positions.get(ch)
            if pos is not None and not self.state[ch] and pos[0] is not None:
                frame["since"] = {"epoch": pos[0], "seq": pos[1]}
            elif pos is None and ch in self.history:
                frame["history"] = self.history[ch]
            out.append(orjson.dumps(frame))
        return out

    def accept(self, frame: dict[str, Any]) -> bool:
        """Update positions from an outgoing frame; False for a state value the client has."""
        op = frame.get("op")
        if op == "msg":
            ch, seq = frame["ch"], frame["seq"]
            epoch, known = self.positions.get(ch, (None, 0))
            if self.state.get(ch) and seq <= known:
                return False
            self.positions[ch] = (epoch, seq)
        elif op == "ok" and isinstance(frame.get("epoch"), str) and frame.get("id") in self.state:
            self.positions[frame["id"]] = (frame["epoch"], int(frame.get("seq", 0)))
        return True

    def take(
        self, conn: Connection, skip: tuple[str, ...] = ("ping", "welcome")
    ) -> Iterator[tuple[bytes, dict[str, Any]]]:
        """Drain the connection's outbox: each frame raw and parsed, minus the ops in ``skip`` and
        state values the client already has. Lazy on purpose: when a frame is yielded,
        :attr:`cursor` covers exactly the frames up to it (an SSE event id must not run ahead)."""
        for raw in conn.outbox.drain():
            frame = orjson.loads(raw)
            if frame.get("op") in skip or (frame.get("op") != "ping" and not self.accept(frame)):
                continue
            yield raw, frame

    def answered(self, frames: list[dict[str, Any]]) -> bool:
        """Whether every channel's ``sub`` was answered (``ok`` or ``err``) among ``frames``."""
        done = {f.get("id") for f in frames if f.get("op") in ("ok", "err")}
        return all(ch in done for ch in self.channels)

    @property
    def cursor(self) -> str:
        return cursors.encode(self.positions)


async def _open(state: EdgeState, transport: str) -> tuple[Connection, _Stream] | tuple[dict, int]:
    """Redeem the ticket, parse channels and cursor, admit, open and subscribe a connection."""
    ticket = request.args.get("ticket", "")
    channels = request.args.getlist("ch")
    if not channels or len(channels) > MAX_CHANNELS:
        return _error(ErrorCode.INVALID_FIELD, f"give 1 to {MAX_CHANNELS} ch parameters")
    for ch in channels:
        try:
            parse_channel(ch)
        except ChannelError as exc:
            return _error(ErrorCode.BAD_CHANNEL, f"{ch[:80]}: {exc.reason}")
    history: dict[str, int] = {}
    for item in request.args.getlist("history"):
        ch, _, n = item.rpartition(":")
        if ch not in channels or not n.isdigit() or not 1 <= int(n) <= MAX_HISTORY:
            return _error(
                ErrorCode.INVALID_FIELD, f"history must be <channel>:<1-{MAX_HISTORY}> for a channel of the request"
            )
        history[ch] = int(n)
    raw_cursor = request.args.get("cursor") or request.headers.get("Last-Event-ID") or ""
    try:
        known = cursors.decode(raw_cursor)
    except cursors.CursorError as exc:
        return _error(ErrorCode.INVALID_FIELD, str(exc))
    try:
        identity = await state.tickets.redeem(ticket, resuming=bool(raw_cursor))
    except TicketError as exc:
        return _error(ErrorCode.UNAUTHORIZED, str(exc), 401)
    peer = request.remote_addr or "?"
    refusal = state.admission.open_peer(peer)
    if refusal is not None:
        return _refused(refusal)
    conn = Connection(state, codec=JSON, peer=peer, transport=transport, identity=identity)
    await conn.start()
    if conn.closing is not None:  # refused at admission: revoked, or the per-user limit
        closed = conn.closing
        conn.release()
        return _error(closed.code, closed.reason)
    stream = _Stream(list(dict.fromkeys(channels)), known, history)
    for frame in stream.sub_frames():
        await conn.feed(frame)
    return conn, stream


async def _authenticate(state: EdgeState) -> Identity | tuple[dict, int]:
    """The identity of an HTTP request: a bearer token, or a ticket (``X-Tickmesh-Ticket``)."""
    token = bearer_token(request.headers)
    if token is not None:
        result = await state.verify(token)
        if isinstance(result, AuthFailure):
            return _error(result.close_code, result.reason)
        return result
    if request.headers.get("X-Tickmesh-Ticket"):
        try:
            return await state.tickets.redeem(request.headers["X-Tickmesh-Ticket"], resuming=True)
        except TicketError as exc:
            return _error(ErrorCode.UNAUTHORIZED, str(exc), 401)
    return _error(ErrorCode.UNAUTHORIZED, "send Authorization: Bearer <token>", 401)


def register(app: Quart, state: EdgeState) -> None:
    settings = state.settings
    admission = state.admission

    @app.post("/ticket")
    async def ticket():
        peer = request.remote_addr or "?"
        refusal = admission.http_address(peer, time.time())
        if refusal is not None:
            return _refused(refusal)
        token = bearer_token(request.headers)
        if token is None:
            return _error(ErrorCode.UNAUTHORIZED, "send Authorization: Bearer <token>", 401)
        result = await state.verify(token)
        if isinstance(result, AuthFailure):
            return _error(result.close_code, result.reason)
        refusal = admission.http_user(result.user, time.time()) or admission.revoked_refusal(result)
        if refusal is not None:
            return _refused(refusal)
        value, expires_in = state.tickets.issue(result)
        return {"ticket": value, "expires_in": expires_in}

    @app.get("/sse")
    async def sse():
        opened = await _open(state, "sse")
        if isinstance(opened[0], dict):
            return opened
        conn, stream = opened

        async def events() -> AsyncIterator[bytes]:
            try:
                yield b"retry: 2000\n\n"
                while True:
                    await conn.wake.wait()
                    conn.wake.clear()
                    out = []
                    for raw, frame in stream.take(conn, skip=()):
                        op = frame["op"]
                        if op == "ping":
                            out.append(b": hb\n\n")
                            continue
                        head = b"event: %s\n" % op.encode()
                        if op == "msg":
                            head += b"id: %s\n" % stream.cursor.encode()
                        out.append(head + b"data: " + raw + b"\n\n")
                    if out:
                        yield b"".join(out)
                    if conn.closing is not None:
                        body = orjson.dumps({"op": "close", "code": conn.closing.code, "reason": conn.closing.reason})
                        yield b"event: close\ndata: " + body + b"\n\n"
                        return
            finally:
                conn.release()

        response = Response(
            events(),
            mimetype="text/event-stream",
            headers={"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no", "Connection": "keep-alive"},
        )
        response.timeout = None  # a stream lives as long as the client stays
        return response

    @app.get("/poll")
    async def poll():
        opened = await _open(state, "poll")
        if isinstance(opened[0], dict):
            return opened
        conn, stream = opened
        frames: list[dict[str, Any]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.poll_wait
        try:
            while True:
                frames += [frame for _, frame in stream.take(conn)]
                if (
                    any(f.get("op") == "msg" for f in frames)
                    or conn.closing is not None
                    or (stream.first and stream.answered(frames))
                ):
                    break
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                conn.wake.clear()
                try:
                    await asyncio.wait_for(conn.wake.wait(), remaining)
                except TimeoutError:
                    pass
            # Messages that are due together go out together.
            await asyncio.sleep(0.005)
            frames += [frame for _, frame in stream.take(conn)]
        finally:
            closed = conn.closing  # before release, which ends the session in any case
            conn.release()
        if closed is not None:
            frames.append({"op": "close", "code": closed.code, "reason": closed.reason})
        return {"frames": frames, "cursor": stream.cursor}

    @app.post("/cmd")
    async def cmd():
        peer = request.remote_addr or "?"
        refusal = admission.http_address(peer, time.time())
        if refusal is not None:
            return _refused(refusal)
        identity = await _authenticate(state)
        if not isinstance(identity, Identity):
            return identity
        body = await request.get_data()
        if len(body) > settings.max_frame_bytes:
            return _error(ErrorCode.FRAME_TOO_LARGE, f"body exceeds {settings.max_frame_bytes} bytes", 413)
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _error(ErrorCode.MALFORMED_FRAME, "body is not valid JSON")
        if not isinstance(parsed, dict):
            return _error(ErrorCode.MALFORMED_FRAME, "body must be a JSON object")
        # An in-flight command counts as one of the user's and the address's connections.
        refusal = admission.open_peer(peer)
        if refusal is not None:
            return _refused(refusal)
        try:
            refusal = admission.open_user(identity)
            if refusal is not None:
                return _refused(refusal)
            try:
                return await _run_command(state, identity, parsed)
            finally:
                admission.close_user(identity.user)
        finally:
            admission.close_peer(peer)


async def _run_command(state: EdgeState, identity: Identity, parsed: dict[str, Any]) -> tuple[dict, int]:
    """One command through the same session core (roles, schema, key, rate limit) as the
    WebSocket's ``cmd``."""
    frame = {
        "op": "cmd",
        "id": parsed.get("id"),
        "name": parsed.get("name"),
        "key": parsed.get("key"),
        "data": parsed.get("data"),
    }
    now = time.time()
    session = Session(
        conn_id="http",
        now=now,
        limits=state.session_limits,
        codec=JSON,
        identity=identity,
        rate_limiter=state.admission.command_limiter(identity.user),
        client_heartbeats=False,
        feature_enabled=state.feature_enabled,
    )
    session.take()  # the welcome
    session.receive_frame(orjson.dumps(frame), now)
    for out in session.take():
        if isinstance(out, RunCommand):
            reply = await state.run_command(out)
            reply = {"op": reply["op"], "id": out.rid, **reply}
            return reply, 200 if reply["op"] == "ok" else http_status(reply["code"])
        if isinstance(out, bytes):
            reply = orjson.loads(out)
            return reply, http_status(reply.get("code", 400))
    return _error(ErrorCode.INTERNAL, "no reply")
