"""Realtime features behind feature flags: which flag gates which channel kind, op and command.

A gated feature is refused with 301 (``reason`` says it is not enabled for the user) when its
flag evaluates to false for the verified identity, and a connection already using it loses it
at once when the flag turns off for its user (server ``unsub``, code 301), without a
reconnect; users whose value did not change notice nothing. A flag that does not exist leaves
its feature on, so a deployment that never created it behaves as before.

The same flags reach the browser on the ``flags`` channel, so the UI hides what the edge
refuses. Pure table and lookups; the session core asks, the edge answers from its FlagFeed.
"""

from __future__ import annotations

from tickmesh.contracts.channels import Kind

# feature -> the boolean flag that gates it
FEATURES: dict[str, str] = {
    "presence": "realtime.presence",
    "watchlist": "realtime.watchlists",
}
GATE_FLAGS = frozenset(FEATURES.values())

_BY_KIND = {Kind.PRESENCE: "presence", Kind.WATCHLIST: "watchlist"}
_BY_OP = {"join": "presence"}
_BY_COMMAND_PREFIX = (("watchlist.", "watchlist"),)


def feature_of_channel(kind: Kind) -> str | None:
    return _BY_KIND.get(kind)


def feature_of_op(op: str) -> str | None:
    return _BY_OP.get(op)


def feature_of_command(name: str) -> str | None:
    for prefix, feature in _BY_COMMAND_PREFIX:
        if name.startswith(prefix):
            return feature
    return None


def refusal(feature: str) -> str:
    return f"{feature} is not enabled for you (feature flag {FEATURES[feature]})"
