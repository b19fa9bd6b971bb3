"""The sans-I/O session core: one client connection's protocol state.

Frames, verification results and the current time go in; frames to send and actions for the I/O
layer come out, in order, from :meth:`Session.take`. The core imports no asyncio, NATS or web
framework, so the WebSocket, SSE and polling adapters all behave the same by construction, and
tests drive it with plain function calls (``now=`` is Unix seconds, passed in).

Guarantees:

* No input raises out of :meth:`Session.receive_frame`: bad input becomes an ``err`` frame with a
  code from ``contracts/codes.toml``, or a :class:`Close` action where continuing is unsafe.
* Nothing but ``auth`` and ``ping`` is served before the connection is authenticated, and every
  channel and command is checked against the verified identity (deny by default).
* ``sub`` and ``unsub`` are answered by the I/O layer (their actions carry the request id),
  because only it knows when the reply may go: after the upstream subscription is live and
  recovery is done for ``sub``; after the last ``msg`` for ``unsub``. ``join`` likewise (a
  watch-list topic needs the stored list to check membership), and the I/O layer may end a
  subscription or a membership itself (:meth:`Session.end_subscription`, access revoked).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tickmesh.contracts.channels import Channel, ChannelError, Kind, parse_channel, parse_topic, subject_for
from tickmesh.contracts.codes import CloseCode, ErrorCode
from tickmesh.contracts.commands import command_subject, commands, encode_request
from tickmesh.contracts.messages import ContractError, schema

from .frames import JSON, Codec, FrameError
from .gates import feature_of_channel, feature_of_command, feature_of_op, refusal
from .identity import AuthFailure, Identity
from .limits import Limiter
from .permissions import Denial, check_channel, check_command, check_join


@dataclass(frozen=True, slots=True)
class Authenticate:
    """Verify ``token``, then call :meth:`Session.auth_result`."""

    token: Any
    rid: Any
    refresh: bool


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Deliver ``subject`` to this connection as channel ``name``, then answer ``rid``.

    State channels: make the upstream subscription live, send ``ok``, the snapshot, then live
    messages. Event channels: send ``ok`` with the recovery result, the messages after ``since``,
    then live messages, cutting the seam so that each position arrives once.
    """

    rid: Any
    name: str
    subject: str
    state: bool
    since: tuple[str, int] | None = None
    max_hz: float | None = None
    audited_owner: str | None = None
    history: int | None = None
    watchlist: str | None = None  # only for members of this list: the I/O layer checks at attach


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """Stop delivering ``subject`` under ``name``; then answer ``rid`` if ``answer`` (the
    subscriptions a close releases are not answered). ``state`` tells the channel's class."""

    name: str
    subject: str
    state: bool
    rid: Any = None
    answer: bool = False


@dataclass(frozen=True, slots=True)
class RunCommand:
    """Send ``payload`` as a NATS request to ``subject``; answer ``rid`` with the reply.

    ``key`` (the client's idempotency key, or ``None``) lets the I/O layer answer a retry with
    the first reply instead of running the command twice. A keyed command has not been
    charged against the user's rate limit yet: a retry of a known key is answered with the
    stored reply and costs nothing, so the I/O layer charges only a key it runs for the first
    time (``CommandRunner.run``).
    """

    rid: Any
    name: str
    subject: str
    payload: bytes
    timeout: float
    key: str | None
    user: str


@dataclass(frozen=True, slots=True)
class Ack:
    """The client says it received positions ``seqs`` of subscription ``name`` (a ``trades``
    channel): record the receipt (``audit.py``); nothing is answered unless the frame had an id."""

    name: str
    seqs: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Join:
    """Make this connection a member of presence ``topic`` with ``data`` (again: update it),
    then answer ``rid``; ``watchlist``: only if the user is a member of that list."""

    rid: Any
    topic: str
    data: Any
    again: bool
    watchlist: str | None = None


@dataclass(frozen=True, slots=True)
class Leave:
    """End this connection's membership of ``topic`` now; answer ``rid`` if ``answer`` (not when
    the server ended it)."""

    rid: Any
    topic: str
    answer: bool = True


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection with ``code`` after flushing queued frames."""

    code: int
    reason: str


Action = Authenticate | Subscribe | Unsubscribe | RunCommand | Ack | Join | Leave | Close
Output = bytes | Action

_MAX_ID_LENGTH = 64
_SOME_TIME = 1_795_630_000_000_000  # any valid time: only a member's data is checked by its schema
_MAX_KEY_LENGTH = 64
MAX_ACK_SEQS = 256


@dataclass(frozen=True)
class SessionLimits:
    auth_timeout: float = 5.0
    heartbeat_interval: float = 25.0
    max_subscriptions: int = 256
    max_frame_bytes: int = 65536
    expiry_leeway: float = 30.0
    commands_per_second: float = 10.0
    commands_burst: float = 20.0
    max_topics: int = 16

    def for_welcome(self) -> dict[str, Any]:
        return {
            "max_subscriptions": self.max_subscriptions,
            "max_frame_bytes": self.max_frame_bytes,
            "commands_per_second": self.commands_per_second,
            "commands_burst": self.commands_burst,
            "max_topics": self.max_topics,
        }


def _check_id(frame: dict[str, Any]) -> Any:
    """Request ids are echoed back, so they are bounded: an int or a short string, or absent."""
    rid = frame.get("id")
    if rid is None:
        return None
    if type(rid) is int and -(2**53) < rid < 2**53:
        return rid
    if isinstance(rid, str) and len(rid) <= _MAX_ID_LENGTH:
        return rid
    raise FrameError(
        ErrorCode.INVALID_FIELD, f"id must be an integer or a string of at most {_MAX_ID_LENGTH} characters"
    )


@dataclass(slots=True)
class _Sub:
    subject: str
    state: bool


class Session:
    __slots__ = (
        "conn_id",
        "opened_at",
        "last_seen",
        "limits",
        "codec",
        "_channel_exists",
        "identity",
        "state",
        "subscriptions",
        "closed",
        "_out",
        "_next_ping",
        "_limiter",
        "_commands",
        "client_heartbeats",
        "_on_error",
        "_feature_enabled",
        "joined",
    )

    AWAITING_AUTH = "awaiting_auth"
    AUTHENTICATING = "authenticating"
    OPEN = "open"
    CLOSED = "closed"

    def __init__(
        self,
        *,
        conn_id: str,
        now: float,
        limits: SessionLimits = SessionLimits(),
        codec: Codec = JSON,
        channel_exists: Callable[[Channel], bool] = lambda ch: True,
        identity: Identity | None = None,
        rate_limiter: Limiter | None = None,
        client_heartbeats: bool = True,
        on_error: Callable[[int], None] | None = None,
        feature_enabled: Callable[[str, Identity], bool] | None = None,
    ) -> None:
        self.conn_id = conn_id
        self.opened_at = now
        self.last_seen = now
        self.limits = limits
        self.codec = codec
        self._channel_exists = channel_exists
        self.identity: Identity | None = None
        self.state = self.AWAITING_AUTH
        self.subscriptions: dict[str, _Sub] = {}
        self.joined: set[str] = set()  # presence topics (the memberships live in edge/presence.py)
        self.closed: Close | None = None
        self._out: list[Output] = []
        self._next_ping = now + limits.heartbeat_interval
        self._limiter = rate_limiter
        self._commands = 0
        # SSE and polling clients cannot answer heartbeats; their transports notice dead peers.
        self.client_heartbeats = client_heartbeats
        self._on_error = on_error  # observes every error code sent (metrics); must not raise
        self._feature_enabled = feature_enabled  # gates.py: is this feature's flag on for the user?
        if identity is not None:
            self.auth_result(identity, now, rid=None, refresh=False, rate_limiter=rate_limiter)

    # -- output ----------------------------------------------------------------------------

    def take(self) -> list[Output]:
        """Everything the core produced since the last call, in the order it must happen."""
        out, self._out = self._out, []
        return out

    def _send(self, obj: dict[str, Any]) -> None:
        self._out.append(self.codec.encode(obj))

    def _error(self, rid: Any, code: ErrorCode | int, reason: str) -> None:
        self._send({"op": "err", "id": rid, "code": int(code), "reason": reason})
        if self._on_error is not None:
            self._on_error(int(code))

    def close(self, code: int, reason: str) -> None:
        """Close with ``code``: every subscription is released first. Idempotent."""
        if self.closed is None:
            self.closed = Close(int(code), reason)
            self.state = self.CLOSED
            for name, sub in self.subscriptions.items():
                self._out.append(Unsubscribe(name, sub.subject, sub.state))
            self.subscriptions.clear()
            self._out.append(self.closed)

    # -- input -----------------------------------------------------------------------------

    def receive_frame(self, data: bytes | str, now: float) -> None:
        """Process one client frame. Never raises."""
        if self.closed is not None:
            return
        self.last_seen = now
        if len(data) > self.limits.max_frame_bytes:
            self._error(None, ErrorCode.FRAME_TOO_LARGE, f"frame exceeds {self.limits.max_frame_bytes} bytes")
            return
        rid = None
        try:
            frame = self.codec.decode(data)
            rid = _check_id(frame)
            op = frame.get("op")
            handler = _HANDLERS.get(op) if isinstance(op, str) else None
            if handler is None:
                raise FrameError(ErrorCode.UNKNOWN_OP, "unknown op" if op is not None else "frame has no op")
            if self.state != self.OPEN and op not in _BEFORE_AUTH:
                raise FrameError(ErrorCode.UNAUTHORIZED, 'authenticate first: send {"op":"auth","token":...}')
            assert isinstance(op, str)  # a handler was found for it
            self._check_feature(feature_of_op(op))
            handler(self, frame, rid, now)
        except FrameError as exc:
            self._error(rid, exc.code, exc.reason)
        except Exception:  # a bug must not take the connection, let alone the edge, down
            self._error(rid, ErrorCode.INTERNAL, "internal error")

    def auth_result(
        self,
        result: Identity | AuthFailure,
        now: float,
        *,
        rid: Any,
        refresh: bool,
        rate_limiter: Limiter | None = None,
    ) -> None:
        """The I/O layer's answer to :class:`Authenticate` (or a header token at connect)."""
        if self.closed is not None:
            return
        if refresh:
            if isinstance(result, AuthFailure):
                self._error(rid, ErrorCode.UNAUTHORIZED, f"refresh refused: {result.reason}")
            elif self.identity is None or result.user != self.identity.user:
                self._error(rid, ErrorCode.FORBIDDEN, "a refreshed token must name the same user")
            else:
                self.identity = result
                self._send({"op": "ok", "id": rid, "expires_at": int(result.expires_at)})
            return
        if isinstance(result, AuthFailure):
            self.close(result.close_code, result.reason)
            return
        self.identity = result
        self.state = self.OPEN
        if rate_limiter is not None:
            self._limiter = rate_limiter
        self._next_ping = now + self.limits.heartbeat_interval
        self._send(
            {
                "op": "welcome",
                "id": rid,
                "conn_id": self.conn_id,
                "user": result.user,
                "roles": sorted(result.roles),
                "proto": self.codec.name,
                "heartbeat_ms": int(self.limits.heartbeat_interval * 1000),
                "expires_at": int(result.expires_at),
                "limits": self.limits.for_welcome(),
            }
        )

    def tick(self, now: float) -> None:
        """Deadlines: authentication, heartbeats, token expiry. Call about once a second."""
        if self.closed is not None:
            return
        if self.state != self.OPEN:
            if now - self.opened_at > self.limits.auth_timeout and self.state == self.AWAITING_AUTH:
                self.close(CloseCode.AUTH_TIMEOUT, "no auth frame in time")
            return
        assert self.identity is not None
        if now > self.identity.expires_at + self.limits.expiry_leeway:
            self.close(CloseCode.TOKEN_EXPIRED, "token expired: get a new token and reconnect")
            return
        if self.client_heartbeats and now - self.last_seen > 2 * self.limits.heartbeat_interval:
            self.close(CloseCode.HEARTBEAT_TIMEOUT, "no frame from the client within two heartbeats")
            return
        if now >= self._next_ping:
            self._send({"op": "ping"})
            self._next_ping = now + self.limits.heartbeat_interval

    def subscribed(self, name: str, rid: Any, fields: dict[str, Any]) -> None:
        """The I/O layer made subscription ``name`` live: answer its ``sub`` with ``ok`` and
        ``fields`` (an event channel's recovery result). Call before queueing its messages."""
        if self.closed is None and name in self.subscriptions:
            self._send({"op": "ok", "id": rid, **fields})

    def subscribe_failed(self, name: str, rid: Any, code: int, reason: str) -> None:
        """The I/O layer could not make subscription ``name`` live (for example its history is
        unavailable): forget it and answer its ``sub`` with ``err``; the client may retry."""
        if self.closed is None and self.subscriptions.pop(name, None) is not None:
            self._error(rid, code, reason)

    def end_subscription(self, name: str, code: int, reason: str) -> None:
        """End subscription ``name`` from the server's side: release it and tell the client with
        a server ``unsub`` (PROTOCOL.md); no ``msg`` of it follows."""
        sub = self.subscriptions.pop(name, None) if self.closed is None else None
        if sub is None:
            return
        self._out.append(Unsubscribe(name, sub.subject, sub.state))
        self._send({"op": "unsub", "ch": name, "code": int(code), "reason": reason})

    def features_changed(self) -> None:
        """Feature flags changed: end every subscription whose feature is now off for this user."""
        if self.closed is not None or self.identity is None or self._feature_enabled is None:
            return
        for name in list(self.subscriptions):
            try:
                feature = feature_of_channel(parse_channel(name).kind)
            except ChannelError:
                continue
            if feature is not None and not self._feature_enabled(feature, self.identity):
                self.end_subscription(name, ErrorCode.FORBIDDEN, refusal(feature))
        if self.joined and not self._feature_enabled("presence", self.identity):
            for topic in sorted(self.joined):
                self._out.append(Leave(None, topic, answer=False))
                self.end_membership(topic, ErrorCode.FORBIDDEN, refusal("presence"))

    def _check_feature(self, feature: str | None) -> None:
        if feature is None or self._feature_enabled is None or self.identity is None:
            return
        if not self._feature_enabled(feature, self.identity):
            raise FrameError(ErrorCode.FORBIDDEN, refusal(feature))

    # -- ops -------------------------------------------------------------------------------

    def _on_auth(self, frame: dict[str, Any], rid: Any, now: float) -> None:
        if self.state != self.AWAITING_AUTH:
            raise FrameError(ErrorCode.INVALID_FIELD, "already authenticated: use refresh")
        if not isinstance(frame.get("token"), str):
            raise FrameError(ErrorCode.INVALID_FIELD, "missing field: token")
        self.state = self.AUTHENTICATING
        self._out.append(Authenticate(frame["token"], rid, refresh=False))

    def _on_refresh(self, frame: dict[str, Any], rid: Any, now: float) -> None:
        if not isinstance(frame.get("token"), str):
            raise FrameError(ErrorCode.INVALID_FIELD, "missing field: token")
        self._out.append(Authenticate(frame["token"], rid, refresh=True))

    def _on_ping(self, frame: dict[str, Any], rid: Any, now: float) -> None:
        self._send({"op": "pong", "id": rid})

    def _on_pong(self, frame: dict[str, Any], rid: Any, now: float) -> None:
        pass  # receiving it refreshed last_seen, which is all a heartbeat answer is for

    def _channel(self, frame: dict[str, Any]) -> Channel:
        if "ch" not in frame:
            raise FrameError(ErrorCode.INVALID_FIELD, "missing field: ch")
        try:
            return parse_channel(frame["ch"])
        except ChannelError as exc:
            raise FrameError(ErrorCode.BAD_CHANNEL, exc.reason) from None

    def _on_sub(self, frame: dict[str, Any], rid: Any, now: float) -> None:
        assert self.identity is not None
        channel = self._channel(frame)
        name = channel.name
        if name in self.subscriptions:
            raise FrameError(ErrorCode.ALREADY_SUBSCRIBED, f"already subscribed to {name}")
        self._check_feature(feature_of_channel(channel.kind))
        grant = check_channel(self.identity, channel)
        if isinstance(grant, Denial):
            raise FrameError(grant.code, grant.reason)
        if not self._channel_exists(channel):
            raise FrameError(ErrorCode.UNKNOWN_CHANNEL, f"no such channel: {name}")
        if len(self.subscriptions) >= self.limits.max_subscriptions:
            raise FrameError(
                ErrorCode.TOO_MANY_SUBSCRIPTIONS,
                f"at most {self.limits.max_subscriptions} subscriptions per connection",
            )
        state = channel.kind.conflates
        if channel.kind is Kind.PRESENCE and (frame.get("since") is not None or frame.get("history") is not None):
            raise FrameError(ErrorCode.INVALID_FIELD, "presence channels start from a snapshot: no since or history")
        max_hz = _max_hz(frame.get("max_hz"), state)
        since = _since(frame.get("since"), state)
        # Prices keep their recent ticks (TM_TICKS), so a chart may ask for them too.
        history = _history(frame.get("history"), state and channel.kind is not Kind.PRICES, since)
        subject = subject_for(channel, user_id=grant.owner)
        self.subscriptions[name] = _Sub(subject, state)
        self._out.append(
            Subscribe(
                rid,
                name,
                subject,
                state,
                since,
                max_hz,
                grant.owner if grant.audited else None,
                history,
                grant.watchlist,
            )
        )

    # -- presence --------------------------------------------------------------------------

    def _on_join(self, frame: dict[str, Any], rid: Any, now: float) -> None:
        assert self.identity is not None
        try:
            topic = parse_topic(frame.get("topic"))
        except ChannelError as exc:
            if "topic" not in frame:
                raise FrameError(ErrorCode.INVALID_FIELD, "missing field: topic") from None
            raise FrameError(ErrorCode.BAD_CHANNEL, exc.reason) from None
        grant = check_join(self.identity, topic)
        if isinstance(grant, Denial):
            raise FrameError(grant.code, grant.reason)
        data = frame.get("data")
        try:
            schema("presence_member").validate(
                {"user": self.identity.user, "name": "x", "conns": 1, "since": _SOME_TIME, "data": data}
            )
        except ContractError as exc:
            raise FrameError(ErrorCode.INVALID_FIELD, f"data: {exc.reason}") from None
        again = topic.name in self.joined
        if not again and len(self.joined) >= self.limits.max_topics:
            raise FrameError(
                ErrorCode.TOO_MANY_TOPICS, f"at most {self.limits.max_topics} presence topics per connection"
            )
        self.joined.add(topic.name)
        self._out.append(Join(rid, topic.name, data, again, grant.watchlist))

    def _on_leave(self, frame: dict[str, Any], rid: Any, now: float) -> None:
        try:
            topic = parse_topic(frame.get("topic"))
        except ChannelError as exc:
            raise FrameError(ErrorCode.BAD_CHANNEL, exc.reason) from None
        if topic.name not in self.joined:
            raise FrameError(ErrorCode.NOT_JOINED, f"not joined to {topic.name}")
        self.joined.discard(topic.name)
        self._out.append(Leave(rid, topic.name))

    def join_done(self, rid: Any, topic: str, again: bool) -> None:
        """The I/O layer recorded the membership: answer the ``join``."""
        if self.closed is None and topic in self.joined:
            self._send({"op": "ok", "id": rid, **({"updated": True} if again else {})})

    def join_failed(self, rid: Any, topic: str, code: int, reason: str, *, again: bool) -> None:
        """The I/O layer refused the join (membership, rate): answer ``err``; a first join is
        forgotten, an update leaves the membership as it was."""
        if self.closed is None:
            if not again:
                self.joined.discard(topic)
            self._error(rid, code, reason)

    def end_membership(self, topic: str, code: int, reason: str) -> None:
        """The server ended this connection's membership of ``topic`` (already released)."""
        if self.closed is None and topic in self.joined:
            self.joined.discard(topic)
            self._send({"op": "leave", "topic": topic, "code": int(code), "reason": reason})

    def _on_unsub(self, frame: dict[str, Any], rid: Any, now: float) -> None:
        channel = self._channel(frame)
        sub = self.subscriptions.pop(channel.name, None)
        if sub is None:
            raise FrameError(ErrorCode.NOT_SUBSCRIBED, f"not subscribed to {channel.name}")
        self._out.append(Unsubscribe(channel.name, sub.subject, sub.state, rid, answer=True))

    def _on_ack(self, frame: dict[str, Any], rid: Any, now: float) -> None:
        channel = self._channel(frame)
        if channel.kind is not Kind.TRADES:
            raise FrameError(ErrorCode.INVALID_FIELD, "ack applies to trades channels only")
        if channel.name not in self.subscriptions:
            raise FrameError(ErrorCode.NOT_SUBSCRIBED, f"not subscribed to {channel.name}")
        seqs = frame.get("seqs")
        if (
            not isinstance(seqs, list)
            or not 1 <= len(seqs) <= MAX_ACK_SEQS
            or not all(type(s) is int and 0 < s < 2**63 for s in seqs)
        ):
            raise FrameError(
                ErrorCode.INVALID_FIELD, f"seqs must be a list of 1 to {MAX_ACK_SEQS} positions (integers >= 1)"
            )
        self._out.append(Ack(channel.name, tuple(seqs)))
        if rid is not None:
            self._send({"op": "ok", "id": rid})

    def _on_cmd(self, frame: dict[str, Any], rid: Any, now: float) -> None:
        assert self.identity is not None
        name = frame.get("name")
        command = commands().get(name) if isinstance(name, str) else None
        if command is None:
            raise FrameError(ErrorCode.UNKNOWN_COMMAND, "unknown command")
        self._check_feature(feature_of_command(command.name))
        denial = check_command(self.identity, command)
        if denial is not None:
            raise FrameError(denial.code, denial.reason)
        key = frame.get("key")
        if key is not None and (not isinstance(key, str) or not 0 < len(key) <= _MAX_KEY_LENGTH):
            raise FrameError(ErrorCode.INVALID_FIELD, f"key must be a string of 1-{_MAX_KEY_LENGTH} characters")
        try:
            data = schema(command.request).validate(frame.get("data") or {})
        except ContractError as exc:
            raise FrameError(ErrorCode.INVALID_FIELD, str(exc)) from None
        if self._limiter is not None and key is None:
            wait = self._limiter.take(now)
            if wait > 0:
                raise FrameError(ErrorCode.RATE_LIMITED, rate_limited_reason(wait))
        self._commands += 1
        cmd_id = f"k:{key}" if key is not None else f"c:{self.conn_id}:{self._commands}"
        payload = encode_request(
            command.name, user=self.identity.user, roles=sorted(self.identity.roles), cmd_id=cmd_id, data=data
        )
        self._out.append(
            RunCommand(
                rid, command.name, command_subject(command.name), payload, command.timeout, key, self.identity.user
            )
        )


def rate_limited_reason(wait: float) -> str:
    return f"too many commands: retry in {math.ceil(wait * 1000)} ms"


def _max_hz(value: Any, state: bool) -> float | None:
    if value is None:
        return None
    if not state:
        raise FrameError(ErrorCode.INVALID_FIELD, "max_hz applies only to state channels (prices, portfolio)")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.1 <= value <= 1000:
        raise FrameError(ErrorCode.INVALID_FIELD, "max_hz must be a number from 0.1 to 1000")
    return float(value)


def _since(value: Any, state: bool) -> tuple[str, int] | None:
    if value is None:
        return None
    if state:
        raise FrameError(
            ErrorCode.INVALID_FIELD, "since applies only to event channels; state channels send a snapshot"
        )
    if not isinstance(value, dict):
        raise FrameError(ErrorCode.INVALID_FIELD, 'since must be {"epoch": string, "seq": integer}')
    epoch, seq = value.get("epoch"), value.get("seq")
    if not isinstance(epoch, str) or len(epoch) > 32 or type(seq) is not int or not 0 <= seq < 2**63:
        raise FrameError(ErrorCode.INVALID_FIELD, 'since must be {"epoch": string, "seq": integer >= 0}')
    return epoch, seq


MAX_HISTORY = 1000


def _history(value: Any, state: bool, since: tuple[str, int] | None) -> int | None:
    if value is None:
        return None
    if state:
        raise FrameError(
            ErrorCode.INVALID_FIELD, "history applies only to event channels and prices; state channels send a snapshot"
        )
    if since is not None:
        raise FrameError(ErrorCode.INVALID_FIELD, "give since or history, not both")
    if type(value) is not int or not 1 <= value <= MAX_HISTORY:
        raise FrameError(ErrorCode.INVALID_FIELD, f"history must be an integer from 1 to {MAX_HISTORY}")
    return value


_HANDLERS: dict[str, Callable[[Session, dict[str, Any], Any, float], None]] = {
    "auth": Session._on_auth,
    "refresh": Session._on_refresh,
    "ping": Session._on_ping,
    "pong": Session._on_pong,
    "sub": Session._on_sub,
    "unsub": Session._on_unsub,
    "cmd": Session._on_cmd,
    "ack": Session._on_ack,
    "join": Session._on_join,
    "leave": Session._on_leave,
}
_BEFORE_AUTH = frozenset({"auth", "ping", "pong"})
