"""Who is on a connection: the verified claims the session core decides with."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified token's claims. ``user`` comes from ``sub``; nothing here is client-chosen."""

    user: str
    roles: frozenset[str]
    entitlements: frozenset[str]
    expires_at: float  # Unix seconds (the token's exp)
    issued_at: float = 0.0
    jti: str | None = None
    name: str | None = None  # the token's ``name`` claim: shown by presence

    @property
    def display_name(self) -> str:
        return self.name or self.user

    @property
    def privileged(self) -> bool:
        """Support and admin may read other users' channels (every such read is logged)."""
        return bool(self.roles & {"support", "admin"})


@dataclass(frozen=True, slots=True)
class AuthFailure:
    """Why a token was refused. ``close_code`` is the code the connection closes with;
    ``kind`` is a bounded label for metrics (one of ``tickmesh.metrics.AUTH_REASONS``)."""

    close_code: int
    reason: str
    kind: str = "malformed"
