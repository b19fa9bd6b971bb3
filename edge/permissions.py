"""Who may read which channel and run which command: deny by default, pure functions.

The rules (PROTOCOL.md, "Permissions"): prices need an entitlement to the symbol's market;
per-user channels are always the caller's own unless a support or admin role names another user
(an audited read); announcements and news are open to every authenticated user. Presence
topics follow what they are about: a symbol's entitlement, a watch-list's membership (which needs
the stored list, so the grant names the list and the I/O layer checks it), the support desk open
to all but joined by support staff only. Commands are allowed by role, per name, from
commands.toml.
"""

from __future__ import annotations

from dataclasses import dataclass

from tickmesh.contracts.channels import Channel, Kind, Topic, TopicKind, parse_topic
from tickmesh.contracts.codes import ErrorCode
from tickmesh.contracts.commands import Command
from tickmesh.contracts.instruments import market_of

from .identity import Identity


@dataclass(frozen=True, slots=True)
class Grant:
    """A permitted channel: the user whose data it carries and whether the read is audited."""

    owner: str | None
    audited: bool = False
    watchlist: str | None = None  # allowed only to members of this list: the I/O layer checks


@dataclass(frozen=True, slots=True)
class Denial:
    code: ErrorCode
    reason: str


def check_channel(identity: Identity, channel: Channel) -> Grant | Denial:
    kind = channel.kind
    if kind is Kind.PRICES:
        market = market_of(channel.arg or "")
        if market is None:
            return Denial(ErrorCode.UNKNOWN_CHANNEL, f"no such channel: {channel.name}")
        if market not in identity.entitlements:
            return Denial(ErrorCode.NOT_ENTITLED, f"your market-data entitlements do not include {market}")
        return Grant(None)
    if kind is Kind.WATCHLIST:
        return Grant(None, watchlist=channel.arg)
    if kind is Kind.PRESENCE:
        return _check_topic(identity, parse_topic(channel.arg), join=False)
    if kind.per_user:
        if channel.arg is None or channel.arg == identity.user:
            return Grant(identity.user)
        if identity.privileged:
            return Grant(channel.arg, audited=True)
        return Denial(ErrorCode.FORBIDDEN, "you may only read your own channels")
    if kind in (Kind.ANNOUNCEMENTS, Kind.NEWS):
        return Grant(None)
    if kind is Kind.FLAGS:  # always the caller's own (the grammar lets it name nobody else)
        return Grant(identity.user)
    return Denial(ErrorCode.FORBIDDEN, "channel not allowed")


def check_join(identity: Identity, topic: Topic) -> Grant | Denial:
    """Who may be a member of a presence topic: as who may watch it, and only support staff at
    the support desk."""
    return _check_topic(identity, topic, join=True)


def _check_topic(identity: Identity, topic: Topic, *, join: bool) -> Grant | Denial:
    if topic.kind is TopicKind.SYMBOL:
        market = market_of(topic.arg)
        if market is None:
            return Denial(ErrorCode.UNKNOWN_CHANNEL, f"no such instrument: {topic.arg}")
        if market not in identity.entitlements:
            return Denial(ErrorCode.NOT_ENTITLED, f"your market-data entitlements do not include {market}")
        return Grant(None)
    if topic.kind is TopicKind.WATCHLIST:
        return Grant(None, watchlist=topic.arg)
    if topic.kind is TopicKind.DESK:
        if join and "support" not in identity.roles:
            return Denial(ErrorCode.FORBIDDEN, "only support staff may join the support desk")
        return Grant(None)
    return Denial(ErrorCode.FORBIDDEN, "topic not allowed")


def check_command(identity: Identity, command: Command) -> Denial | None:
    if identity.roles & command.roles:
        return None
    return Denial(ErrorCode.FORBIDDEN, f"{command.name} needs one of the roles: {', '.join(sorted(command.roles))}")
