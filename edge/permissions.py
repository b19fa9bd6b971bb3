"""Who may read which channel and run which command: deny by default, pure functions.

The rules (PROTOCOL.md, "Permissions"): prices need an entitlement to the symbol's market;
per-user channels are always the caller's own unless a support or admin role names another user
(an audited read); announcements and news are open to every authenticated user. Commands are
allowed by role, per name, from commands.toml.
"""

from __future__ import annotations

from dataclasses import dataclass

from tickmesh.contracts.channels import Channel, Kind
from tickmesh.contracts.codes import ErrorCode
from tickmesh.contracts.commands import Command
from tickmesh.contracts.instruments import market_of

from .identity import Identity


@dataclass(frozen=True, slots=True)
class Grant:
    """A permitted channel: the user whose data it carries and whether the read is audited."""

    owner: str | None
    audited: bool = False


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


def check_command(identity: Identity, command: Command) -> Denial | None:
    if identity.roles & command.roles:
        return None
    return Denial(ErrorCode.FORBIDDEN, f"{command.name} needs one of the roles: {', '.join(sorted(command.roles))}")
