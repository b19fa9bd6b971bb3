"""What a load client says to each kind of server, as small sans-I/O codecs.

A codec turns "subscribe to these channels" into the frames the server understands, and reads
server messages only as far as the handshake needs: it reports how many subscription
acknowledgements a message carries and which replies (pongs) must go back. Message payloads are
never parsed here; the client finds send timestamps with one regular expression over the raw
bytes (see :data:`TIMESTAMP_KEYS`), which works for every protocol below.

Codecs: ``tickmesh`` (auth, then ``sub`` frames, ``ok`` replies), ``naive`` (the same frames
without auth, for the naive broadcaster peers), ``nats`` (the NATS protocol over WebSocket:
CONNECT, SUB, PING; the PONG acknowledges every SUB before it) and ``socketio`` (Engine.IO v4 /
Socket.IO v5 over a WebSocket: ``40`` connects the namespace, ``42<id>["sub",ch]`` is
acknowledged by ``43<id>``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import orjson

from tickmesh.contracts.channels import parse_channel, subject_for

#: Regex per timestamp key, microseconds since the epoch. ``bt`` is the bench's own send time;
#: ``ts`` is a market-feed tick's provider time. The optional backslash matches a payload that a
#: peer re-encoded inside a JSON string (Socket.IO).
TIMESTAMP_KEYS = {
    "bt": re.compile(rb'"bt\\?":(\d+)'),
    "ts": re.compile(rb'"ts\\?":(\d+)'),
}


class Codec:
    """Per-connection handshake state. ``hello`` is sent on connect; ``feed`` is called with each
    server message until :attr:`ready`, and returns the messages to send back."""

    #: a message to send periodically to keep an otherwise silent client alive (or None)
    keepalive: bytes | None = None

    def __init__(self, channels: list[str], token: Callable[[], str] | None) -> None:
        self.channels = channels
        self.token = token
        self.acked = 0
        self.failed = 0

    @property
    def ready(self) -> bool:
        return self.acked + self.failed >= len(self.channels)

    def hello(self) -> list[bytes]:
        raise NotImplementedError

    def feed(self, message: bytes) -> list[bytes]:
        raise NotImplementedError

    def pong(self, message: bytes) -> bytes | None:
        """The reply a server-initiated ping needs once the handshake is over (or None)."""
        return None


class TickmeshCodec(Codec):
    """Auth first, then the subs once the auth reply (``welcome``, or ``err`` from an edge
    without auth) arrives. The server's heartbeat ``{"op":"ping"}`` is answered with a pong, and
    the client sends an unsolicited pong every few seconds itself (any client frame meets the
    heartbeat deadline; a pong needs no reply)."""

    keepalive = b'{"op":"pong"}'  # refreshes the edge's heartbeat deadline without a reply
    auth = True

    def __init__(self, channels: list[str], token: Callable[[], str] | None) -> None:
        super().__init__(channels, token)
        self._subs_sent = False

    def _subs(self) -> list[bytes]:
        self._subs_sent = True
        return [orjson.dumps({"op": "sub", "id": i + 1, "ch": ch}) for i, ch in enumerate(self.channels)]

    def hello(self) -> list[bytes]:
        if self.auth and self.token is not None:
            return [orjson.dumps({"op": "auth", "token": self.token()})]
        return self._subs()

    def feed(self, message: bytes) -> list[bytes]:
        if not self._subs_sent:  # the auth reply (welcome, or err from an edge without auth)
            return self._subs()
        self.acked += message.count(b'"op":"ok"')
        self.failed += message.count(b'"op":"err"')
        return []

    def pong(self, message: bytes) -> bytes | None:
        return b'{"op":"pong"}' if b'"op":"ping"' in message else None


class ResumingCodec(TickmeshCodec):
    """tickmesh, resuming one event channel: its ``sub`` carries ``since`` (the position the
    client has, from ``since()``; none on the first connection), and the channel's ``ok`` replies
    are decoded (handshake only) and kept in :attr:`oks` for the caller's bookkeeping
    (:class:`tickmesh.ops.bench.positions.Position`); its ``err`` replies go to :attr:`errs`, and
    :meth:`retry` makes the ``sub`` again (for an error the protocol says to retry)."""

    def __init__(
        self, channels: list[str], token: Callable[[], str] | None, channel: str, since: Callable[[], dict | None]
    ) -> None:
        super().__init__(channels, token)
        self.channel = channel
        self.since = since
        self.sub_id = channels.index(channel) + 1
        self.oks: list[dict] = []
        self.errs: list[dict] = []
        self.retries = 0

    def _sub(self) -> bytes:
        frame = {"op": "sub", "id": self.sub_id, "ch": self.channel}
        since = self.since()
        if since is not None:
            frame["since"] = since
        return orjson.dumps(frame)

    def _subs(self) -> list[bytes]:
        frames = super()._subs()
        frames[self.sub_id - 1] = self._sub()
        return frames

    def feed(self, message: bytes) -> list[bytes]:
        if self._subs_sent and (b'"op":"ok"' in message or b'"op":"err"' in message):
            obj = orjson.loads(message)
            for frame in obj if isinstance(obj, list) else (obj,):
                if isinstance(frame, dict) and frame.get("id") == self.sub_id:
                    if frame.get("op") == "ok":
                        self.oks.append(frame)
                    elif frame.get("op") == "err":
                        self.errs.append(frame)
        return super().feed(message)

    def retry(self) -> bytes:
        """The channel's ``sub`` once more, from the position the client has now."""
        self.failed = max(0, self.failed - 1)
        self.retries += 1
        return self._sub()


class NaiveCodec(TickmeshCodec):
    """The naive peers speak ``sub``/``ok`` but have no auth."""

    keepalive = b'{"op":"ping"}'
    auth = False


class NatsCodec(Codec):
    """NATS over WebSocket: one message with CONNECT, a SUB per channel and a PING."""

    def hello(self) -> list[bytes]:
        parts = [b'CONNECT {"verbose":false,"pedantic":false,"protocol":1,"name":"tickmesh-bench"}\r\n']
        for sid, ch in enumerate(self.channels, 1):
            parts.append(b"SUB %s %d\r\n" % (subject_for(parse_channel(ch)).encode(), sid))
        parts.append(b"PING\r\n")
        return [b"".join(parts)]

    def feed(self, message: bytes) -> list[bytes]:
        if b"PONG\r\n" in message:
            self.acked = len(self.channels)
        return self.pong(message) and [b"PONG\r\n"] or []

    def pong(self, message: bytes) -> bytes | None:
        return b"PONG\r\n" if b"PING\r\n" in message else None


class SocketIOCodec(Codec):
    """Engine.IO open (``0``) -> namespace connect (``40``) -> subs with acks (``42<id>``)."""

    def hello(self) -> list[bytes]:
        return []  # the server speaks first (the Engine.IO open packet)

    def feed(self, message: bytes) -> list[bytes]:
        if message[:1] == b"0":
            return [b"40"]
        if message[:2] == b"40":
            return [b'42%d["sub",%s]' % (i + 1, orjson.dumps(ch)) for i, ch in enumerate(self.channels)]
        if message[:2] == b"43":
            self.acked += 1
        elif message[:2] == b"44":
            self.failed = len(self.channels)
        return self.pong(message) and [b"3"] or []

    def pong(self, message: bytes) -> bytes | None:
        return b"3" if message == b"2" else None


#: ``sse`` has no codec: :mod:`tickmesh.ops.bench.sse` does its handshake over HTTP.
CODECS: dict[str, type[Codec]] = {
    "tickmesh": TickmeshCodec,
    "naive": NaiveCodec,
    "nats": NatsCodec,
    "socketio": SocketIOCodec,
}
