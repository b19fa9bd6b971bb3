"""Channel names (what clients say) and NATS subjects (what services publish on).

This module is the only place that spells a subject. A channel name from a client is parsed
against a strict grammar before anything else happens, and the parts that reach a subject are
escaped by :func:`encode_token`, so no wildcard (``*``, ``>``), separator (``.``), whitespace or
control character chosen by a client can ever reach NATS.

Grammar (also in PROTOCOL.md)::

    channel   = "prices:" symbol
              / user-kind [ ":" user-id ]          ; the ":" form is for support/admin roles
              / "announcements" / "news"
              / "presence:" topic
              / "watchlist:" watchlist-id
              / "flags"                            ; the caller's own evaluated feature flags
    user-kind = "portfolio" / "trades" / "notifications" / "alerts"
    topic     = "symbol." symbol / "watchlist." watchlist-id / "desk.support"
    symbol    = 1 char of [A-Z0-9^], then 0..31 of [A-Z0-9 . - / _ = ^]
    user-id   = 1..64 of [A-Za-z0-9 . _ @ -]
    watchlist-id = 22 of [A-Za-z0-9]                ; random, about 131 bits: unguessable
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

SUBJECT_ROOT = "tm"

SYMBOL_RE = re.compile(r"[A-Z0-9^][A-Z0-9./_=^-]{0,31}")
USER_ID_RE = re.compile(r"[A-Za-z0-9._@-]{1,64}")
WATCHLIST_ID_RE = re.compile(r"[A-Za-z0-9]{22}")
MAX_CHANNEL_LENGTH = 80

_TOKEN_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")
_HEX = "0123456789ABCDEF"


class ChannelError(ValueError):
    """A channel name that breaks the grammar. ``reason`` is safe to show to the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Kind(str, Enum):
    """What a channel carries. ``value`` is the channel's prefix."""

    PRICES = "prices"
    PORTFOLIO = "portfolio"
    TRADES = "trades"
    NOTIFICATIONS = "notifications"
    ALERTS = "alerts"
    ANNOUNCEMENTS = "announcements"
    NEWS = "news"
    PRESENCE = "presence"
    WATCHLIST = "watchlist"
    FLAGS = "flags"

    @property
    def per_user(self) -> bool:
        return self in _PER_USER

    @property
    def conflates(self) -> bool:
        """State channels (latest value wins) conflate for slow clients; event channels never do."""
        return self in (Kind.PRICES, Kind.PORTFOLIO, Kind.WATCHLIST, Kind.FLAGS)

    @property
    def channel_class(self) -> str:
        """``state`` (snapshot, then the latest values), ``event`` (every message, resumable with
        ``since``) or ``presence`` (a member-list snapshot, then versioned deltas)."""
        if self is Kind.PRESENCE:
            return "presence"
        return "state" if self.conflates else "event"


_PER_USER = frozenset({Kind.PORTFOLIO, Kind.TRADES, Kind.NOTIFICATIONS, Kind.ALERTS})
_BY_PREFIX = {k.value: k for k in Kind}


def encode_token(text: str) -> str:
    """Escape ``text`` into one NATS subject token, reversibly.

    Letters, digits and ``-`` stay; every other byte of the UTF-8 form becomes ``_`` and two
    upper-case hex digits (``BRK.B`` -> ``BRK_2EB``). The result is never empty for a non-empty
    input and never contains ``.``, ``*``, ``>`` or whitespace.
    """
    if not text:
        raise ValueError("empty token")
    out: list[str] = []
    for ch in text:
        if ch in _TOKEN_SAFE:
            out.append(ch)
        else:
            for byte in ch.encode("utf-8"):
                out.append("_" + _HEX[byte >> 4] + _HEX[byte & 15])
    return "".join(out)


def decode_token(token: str) -> str:
    """Invert :func:`encode_token`. Raises ``ValueError`` on anything it would not have produced."""
    raw = bytearray()
    i, n = 0, len(token)
    if n == 0:
        raise ValueError("empty token")
    while i < n:
        ch = token[i]
        if ch == "_":
            pair = token[i + 1 : i + 3]
            if len(pair) != 2 or any(c not in _HEX for c in pair):
                raise ValueError(f"bad escape in token {token!r}")
            byte = int(pair, 16)
            if chr(byte) in _TOKEN_SAFE:
                raise ValueError(f"needless escape in token {token!r}")
            raw.append(byte)
            i += 3
        elif ch in _TOKEN_SAFE:
            raw.append(ord(ch))
            i += 1
        else:
            raise ValueError(f"bad character {ch!r} in token {token!r}")
    return raw.decode("utf-8")


@dataclass(frozen=True, slots=True)
class Channel:
    """A parsed, valid channel. ``arg`` is the symbol for prices, the user id for user channels
    (``None`` when the channel means "my own"), and ``None`` for public channels."""

    kind: Kind
    arg: str | None = None

    @property
    def name(self) -> str:
        return self.kind.value if self.arg is None else f"{self.kind.value}:{self.arg}"

    def __str__(self) -> str:
        return self.name


def parse_channel(name: object) -> Channel:
    """Parse a client-supplied channel name, or raise :class:`ChannelError` saying why not."""
    if not isinstance(name, str):
        raise ChannelError("channel must be a string")
    if not name:
        raise ChannelError("channel is empty")
    if len(name) > MAX_CHANNEL_LENGTH:
        raise ChannelError(f"channel is longer than {MAX_CHANNEL_LENGTH} characters")
    prefix, sep, arg = name.partition(":")
    kind = _BY_PREFIX.get(prefix)
    if kind is None:
        raise ChannelError(f"unknown channel prefix {prefix[:20]!r}")
    if kind is Kind.PRICES:
        if not sep:
            raise ChannelError("prices channel needs a symbol: prices:<SYMBOL>")
        if not SYMBOL_RE.fullmatch(arg):
            raise ChannelError("symbol must be 1-32 of A-Z 0-9 . - / _ = ^ (upper case), starting with A-Z, 0-9 or ^")
        return Channel(kind, arg)
    if kind.per_user:
        if not sep:
            return Channel(kind)
        if not USER_ID_RE.fullmatch(arg):
            raise ChannelError("user id must be 1-64 of A-Z a-z 0-9 . _ @ -")
        return Channel(kind, arg)
    if kind is Kind.PRESENCE:
        if not sep:
            raise ChannelError("presence channel needs a topic: presence:<topic>")
        return Channel(kind, parse_topic(arg).name)
    if kind is Kind.WATCHLIST:
        if not sep:
            raise ChannelError("watchlist channel needs an id: watchlist:<id>")
        return Channel(kind, validate_watchlist_id(arg))
    if sep:
        raise ChannelError(f"channel {kind.value!r} takes no argument")
    return Channel(kind)


def validate_symbol(symbol: object) -> str:
    """Return ``symbol`` if it follows the symbol grammar, else raise :class:`ChannelError`."""
    if not isinstance(symbol, str) or not SYMBOL_RE.fullmatch(symbol):
        raise ChannelError("symbol must be 1-32 of A-Z 0-9 . - / _ = ^ (upper case), starting with A-Z, 0-9 or ^")
    return symbol


def validate_watchlist_id(value: object) -> str:
    """Return ``value`` if it is a well-formed watch-list id, else raise :class:`ChannelError`."""
    if not isinstance(value, str) or not WATCHLIST_ID_RE.fullmatch(value):
        raise ChannelError("watch-list id must be 22 of A-Z a-z 0-9")
    return value


class TopicKind(str, Enum):
    """What people gather around in a presence topic. ``value`` is the topic's prefix."""

    SYMBOL = "symbol"
    WATCHLIST = "watchlist"
    DESK = "desk"


DESKS = frozenset({"support"})


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed presence topic: ``symbol.AAPL``, ``watchlist.<id>`` or ``desk.support``."""

    kind: TopicKind
    arg: str

    @property
    def name(self) -> str:
        return f"{self.kind.value}.{self.arg}"

    def __str__(self) -> str:
        return self.name


def parse_topic(name: object) -> Topic:
    """Parse a client-supplied presence topic, or raise :class:`ChannelError` saying why not."""
    if not isinstance(name, str):
        raise ChannelError("topic must be a string")
    prefix, sep, arg = name.partition(".")
    if not sep:
        raise ChannelError("topic must be symbol.<SYMBOL>, watchlist.<id> or desk.support")
    if prefix == TopicKind.SYMBOL.value:
        return Topic(TopicKind.SYMBOL, validate_symbol(arg))
    if prefix == TopicKind.WATCHLIST.value:
        return Topic(TopicKind.WATCHLIST, validate_watchlist_id(arg))
    if prefix == TopicKind.DESK.value and arg in DESKS:
        return Topic(TopicKind.DESK, arg)
    raise ChannelError("topic must be symbol.<SYMBOL>, watchlist.<id> or desk.support")


# --- subjects -------------------------------------------------------------------------------


def tick_subject(symbol: str) -> str:
    """Subject on which market-feed publishes ticks for ``symbol``."""
    return f"{SUBJECT_ROOT}.tick.{encode_token(validate_symbol(symbol))}"


TICK_WILDCARD = f"{SUBJECT_ROOT}.tick.*"

# Control plane: ``{"user": "<id>"}`` here makes every edge close that user's connections
# (PROTOCOL.md, "Revocation"). Only the admin identity may publish it (NATS permissions).
REVOKE_SUBJECT = f"{SUBJECT_ROOT}.ctl.revoke"


def user_subject(kind: Kind, user_id: str) -> str:
    """Subject for a per-user channel of ``user_id`` (already authenticated, never from a payload)."""
    if not kind.per_user:
        raise ValueError(f"{kind.value} is not a per-user channel")
    if not USER_ID_RE.fullmatch(user_id):
        raise ChannelError("user id must be 1-64 of A-Z a-z 0-9 . _ @ -")
    return f"{SUBJECT_ROOT}.user.{encode_token(user_id)}.{kind.value}"


def flags_subject(user_id: str) -> str:
    """The edge-local key of ``user_id``'s evaluated flags (channel ``flags``).

    Nothing is published on it: every edge evaluates a user's flags itself from the ``tm_flags``
    bucket and the verified identity, so a client only ever receives its own values, never a
    rule. The subject exists so that the channel has one name in the edge's hub like any other.
    """
    if not USER_ID_RE.fullmatch(user_id):
        raise ChannelError("user id must be 1-64 of A-Z a-z 0-9 . _ @ -")
    return f"{SUBJECT_ROOT}.flags.eval.{encode_token(user_id)}"


FLAG_AUDIT_SUBJECT = f"{SUBJECT_ROOT}.flags.audit"  # every change to a flag, with who made it

# The trade-delivery audit trail (stream TM_TRADE_AUDIT): every edge writes, per user, when each
# `trades` event reached each connection and when the client acknowledged it.
TRADE_AUDIT_WILDCARD = f"{SUBJECT_ROOT}.audit.trades.*"


def trade_audit_subject(user_id: str) -> str:
    """Subject of ``user_id``'s trade-delivery audit records."""
    if not USER_ID_RE.fullmatch(user_id):
        raise ChannelError("user id must be 1-64 of A-Z a-z 0-9 . _ @ -")
    return f"{SUBJECT_ROOT}.audit.trades.{encode_token(user_id)}"


def public_subject(kind: Kind) -> str:
    if kind not in (Kind.ANNOUNCEMENTS, Kind.NEWS):
        raise ValueError(f"{kind.value} is not a public channel")
    return f"{SUBJECT_ROOT}.{kind.value}"


def wildcard(kind: Kind) -> str:
    """The subject pattern matching every channel of ``kind``: ``tm.tick.*``,
    ``tm.user.*.trades``, ``tm.news``. For stream configurations, service- and edge-side
    subscriptions and permissions; never for a client's subscription (a client names one
    channel, and :func:`user_subject` refuses ``*`` as a user id on purpose)."""
    if kind is Kind.PRICES:
        return TICK_WILDCARD
    if kind.per_user:
        return f"{SUBJECT_ROOT}.user.*.{kind.value}"
    if kind is Kind.WATCHLIST:
        return WATCHLIST_WILDCARD
    if kind is Kind.PRESENCE:
        return f"{SUBJECT_ROOT}.presence.*"
    return public_subject(kind)


# Watch-lists live in a JetStream KV bucket; the bucket republishes every stored revision (and
# every delete) of list <id> on ``tm.wl.<id>``, so the state subject can never disagree with the
# store. The bucket's own subject for <id> is where the latest revision (the snapshot) is read.
WATCHLISTS_BUCKET = "tm_watchlists"
WATCHLIST_WILDCARD = f"{SUBJECT_ROOT}.wl.*"


def watchlist_subject(watchlist_id: str) -> str:
    """State subject of watch-list ``watchlist_id`` (the bucket republishes each revision here)."""
    return f"{SUBJECT_ROOT}.wl.{validate_watchlist_id(watchlist_id)}"


def watchlist_store_subject(watchlist_id: str) -> str:
    """The KV bucket's own subject for ``watchlist_id``: its last message is the snapshot."""
    return f"$KV.{WATCHLISTS_BUCKET}.{validate_watchlist_id(watchlist_id)}"


def presence_subject(topic: str) -> str:
    """The edge-internal name under which presence frames of ``topic`` fan out.

    Nothing is published on it: each edge builds a topic's member list from the presence KV
    bucket (``tickmesh.presence``) and frames it itself.
    """
    return f"{SUBJECT_ROOT}.presence.{encode_token(parse_topic(topic).name)}"


PRESENCE_PREFIX = f"{SUBJECT_ROOT}.presence."
WATCHLIST_PREFIX = f"{SUBJECT_ROOT}.wl."


def is_presence_subject(subject: str) -> bool:
    return subject.startswith(PRESENCE_PREFIX)


def topic_of(subject: str) -> str:
    """The topic behind :func:`presence_subject` (raises ValueError for anything else)."""
    if not subject.startswith(PRESENCE_PREFIX):
        raise ValueError(f"not a presence subject: {subject!r}")
    return parse_topic(decode_token(subject[len(PRESENCE_PREFIX) :])).name


def watchlist_of(subject: str) -> str | None:
    """The watch-list id of a ``tm.wl.<id>`` subject, else ``None``."""
    if subject.startswith(WATCHLIST_PREFIX) and WATCHLIST_ID_RE.fullmatch(subject[len(WATCHLIST_PREFIX) :]):
        return subject[len(WATCHLIST_PREFIX) :]
    return None


def subject_for(channel: Channel, *, user_id: str | None = None) -> str:
    """The NATS subject that feeds ``channel``.

    For a per-user channel without an explicit user (``portfolio``), ``user_id`` is the
    authenticated user's id; the caller must have checked any explicit user against permissions.
    """
    if channel.kind is Kind.PRICES:
        assert channel.arg is not None
        return tick_subject(channel.arg)
    if channel.kind is Kind.WATCHLIST:
        assert channel.arg is not None
        return watchlist_subject(channel.arg)
    if channel.kind is Kind.PRESENCE:
        assert channel.arg is not None
        return presence_subject(channel.arg)
    if channel.kind.per_user:
        owner = channel.arg or user_id
        if owner is None:
            raise ValueError("a per-user channel needs a user id")
        return user_subject(channel.kind, owner)
    if channel.kind is Kind.FLAGS:
        if user_id is None:
            raise ValueError("the flags channel needs the authenticated user's id")
        return flags_subject(user_id)
    return public_subject(channel.kind)


def is_state_subject(subject: str) -> bool:
    """Whether ``subject`` feeds a state channel (prices, portfolio, watch-lists, flags): latest value wins."""
    return subject.startswith((f"{SUBJECT_ROOT}.tick.", f"{SUBJECT_ROOT}.wl.", f"{SUBJECT_ROOT}.flags.eval.")) or (
        subject.startswith(f"{SUBJECT_ROOT}.user.") and subject.endswith(".portfolio")
    )


def channel_for_subject(subject: str) -> Channel:
    """Invert :func:`subject_for` (per-user channels come back with their explicit user id; the
    flags channel never names its user, so it comes back as plain ``flags``)."""
    parts = subject.split(".")
    if len(parts) < 2 or parts[0] != SUBJECT_ROOT:
        raise ValueError(f"not a tickmesh subject: {subject!r}")
    if parts[1] == "tick" and len(parts) == 3:
        return Channel(Kind.PRICES, validate_symbol(decode_token(parts[2])))
    if parts[1] == "user" and len(parts) == 4:
        kind = _BY_PREFIX.get(parts[3])
        if kind is not None and kind.per_user:
            return Channel(kind, decode_token(parts[2]))
    if parts[1:3] == ["flags", "eval"] and len(parts) == 4:
        decode_token(parts[3])
        return Channel(Kind.FLAGS)
    if len(parts) == 2 and parts[1] in ("announcements", "news"):
        return Channel(_BY_PREFIX[parts[1]])
    if parts[1] == "wl" and len(parts) == 3:
        return Channel(Kind.WATCHLIST, validate_watchlist_id(parts[2]))
    if parts[1] == "presence" and len(parts) == 3:
        return Channel(Kind.PRESENCE, parse_topic(decode_token(parts[2])).name)
    raise ValueError(f"not a channel subject: {subject!r}")
