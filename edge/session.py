"""The sans-I/O session core: one client connection's protocol state.

Frames and the current time go in; frames to send and actions for the I/O layer come out, in
order, from :meth:`Session.take`. The core imports no asyncio, NATS or web framework, so the
WebSocket, SSE and polling adapters all behave the same by construction, and tests drive it with
plain function calls (``now=`` replaces a clock).

Guarantees:

* No input raises out of :meth:`Session.receive_frame`: bad input becomes an ``err`` frame with a
  code from ``contracts/codes.toml``, or a :class:`Close` action where continuing is unsafe.
* ``sub`` and ``unsub`` replies travel inside their :class:`Subscribe` and :class:`Unsubscribe`
  actions, because only the I/O layer knows when the reply may go: after the upstream
  subscription is live and before the first ``msg`` for ``sub``; after the last ``msg`` for
  ``unsub``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Union

from tickmesh.contracts.channels import Channel, ChannelError, Kind, parse_channel, subject_for
from tickmesh.contracts.codes import CloseCode, ErrorCode

from . import frames
from .frames import FrameError


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Start delivering ``subject`` to this connection, framed with channel name ``name``.

    The I/O layer must make the upstream subscription live, then queue ``reply``, then start
    delivery, in that order: the client may rely on everything published after ``ok`` arriving.
    """

    name: str
    subject: str
    conflate: bool
    reply: bytes


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """Stop delivering ``subject`` under ``name``, then queue ``reply`` (if any)."""

    name: str
    subject: str
    reply: bytes | None = None


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection with ``code`` (a :class:`CloseCode`) after flushing queued frames."""

    code: int
    reason: str


Action = Union[Subscribe, Unsubscribe, Close]
Output = Union[bytes, Action]

_MAX_ID_LENGTH = 64


def _check_id(frame: dict[str, Any]) -> Any:
    """Request ids are echoed back, so they are bounded: an int or a short string, or absent."""
    rid = frame.get("id")
    if rid is None:
        return None
    if type(rid) is int and -(2**53) < rid < 2**53:
        return rid
    if isinstance(rid, str) and len(rid) <= _MAX_ID_LENGTH:
        return rid
    raise FrameError(ErrorCode.INVALID_FIELD, f"id must be an integer or a string of at most {_MAX_ID_LENGTH} characters")


class Session:
    def __init__(
        self,
        *,
        conn_id: str,
        now: float,
        max_subscriptions: int = 256,
        max_frame_bytes: int = 65536,
        channel_exists: Callable[[Channel], bool] = lambda ch: True,
    ) -> None:
        self.conn_id = conn_id
        self.opened_at = now
        self.last_seen = now
        self.max_subscriptions = max_subscriptions
        self.max_frame_bytes = max_frame_bytes
        self._channel_exists = channel_exists
        self.subscriptions: dict[str, str] = {}  # channel name -> subject
        self.closed: Close | None = None
        self._out: list[Output] = []

    # -- output ----------------------------------------------------------------------------

    def take(self) -> list[Output]:
        """Everything the core produced since the last call, in the order it must happen."""
        out, self._out = self._out, []
        return out

    def _error(self, rid: Any, code: ErrorCode, reason: str) -> None:
        self._out.append(frames.err_frame(rid, code, reason))

    def close(self, code: CloseCode, reason: str) -> None:
        if self.closed is None:
            self.closed = Close(int(code), reason)
            for name, subject in self.subscriptions.items():
                self._out.append(Unsubscribe(name, subject))
            self.subscriptions.clear()
            self._out.append(self.closed)

    # -- input -----------------------------------------------------------------------------

    def receive_frame(self, data: bytes | str, now: float) -> None:
        """Process one client frame. Never raises."""
        if self.closed is not None:
            return
        self.last_seen = now
        if len(data) > self.max_frame_bytes:
            self._error(None, ErrorCode.FRAME_TOO_LARGE, f"frame exceeds {self.max_frame_bytes} bytes")
            return
        rid = None
        try:
            frame = frames.decode_json(data)
            rid = _check_id(frame)
            op = frame.get("op")
            handler = _HANDLERS.get(op) if isinstance(op, str) else None
            if handler is None:
                raise FrameError(ErrorCode.UNKNOWN_OP, "unknown op" if op is not None else "frame has no op")
            handler(self, frame, rid)
        except FrameError as exc:
            self._error(rid, exc.code, exc.reason)
        except Exception:  # a bug must not take the connection, let alone the edge, down
            self._error(rid, ErrorCode.INTERNAL, "internal error")

    # -- ops -------------------------------------------------------------------------------

    def _on_ping(self, frame: dict[str, Any], rid: Any) -> None:
        self._out.append(frames.encode_json({"op": "pong", "id": rid}))

    def _channel(self, frame: dict[str, Any]) -> Channel:
        if "ch" not in frame:
            raise FrameError(ErrorCode.INVALID_FIELD, "missing field: ch")
        try:
            return parse_channel(frame["ch"])
        except ChannelError as exc:
            raise FrameError(ErrorCode.BAD_CHANNEL, exc.reason) from None

    def _on_sub(self, frame: dict[str, Any], rid: Any) -> None:
        channel = self._channel(frame)
        name = channel.name
        if name in self.subscriptions:
            raise FrameError(ErrorCode.ALREADY_SUBSCRIBED, f"already subscribed to {name}")
        if channel.kind is not Kind.PRICES or not self._channel_exists(channel):
            raise FrameError(ErrorCode.UNKNOWN_CHANNEL, f"no such channel: {name}")
        if len(self.subscriptions) >= self.max_subscriptions:
            raise FrameError(ErrorCode.TOO_MANY_SUBSCRIPTIONS, f"at most {self.max_subscriptions} subscriptions per connection")
        subject = subject_for(channel)
        self.subscriptions[name] = subject
        self._out.append(Subscribe(name, subject, channel.kind.conflates, frames.ok_frame(rid)))

    def _on_unsub(self, frame: dict[str, Any], rid: Any) -> None:
        channel = self._channel(frame)
        subject = self.subscriptions.pop(channel.name, None)
        if subject is None:
            raise FrameError(ErrorCode.NOT_SUBSCRIBED, f"not subscribed to {channel.name}")
        self._out.append(Unsubscribe(channel.name, subject, frames.ok_frame(rid)))


_HANDLERS: dict[str, Callable[[Session, dict[str, Any], Any], None]] = {
    "ping": Session._on_ping,
    "sub": Session._on_sub,
    "unsub": Session._on_unsub,
}
