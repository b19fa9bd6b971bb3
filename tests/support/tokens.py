"""Tokens for tests, signed with a fixed development secret that test edges are started with."""

from tickmesh import devtokens

SECRET = "test-secret-not-for-production-0123456789abcdef"


def token(user: str = "alice", *, roles=("user",), ent=devtokens.ALL_MARKETS, ttl: int = 3600, **kw) -> str:
    return devtokens.mint(user, secret=SECRET, roles=tuple(roles), entitlements=tuple(ent), ttl=ttl, **kw)
