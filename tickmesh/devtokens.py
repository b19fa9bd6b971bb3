"""Development tokens: a local HS256 signing key and ``tickmesh token``.

In production the platform's identity provider issues tokens (RS256/ES256, verified against its
JWKS); locally, ``tickmesh up`` creates a random HS256 secret under ``TICKMESH_HOME`` once, and
``tickmesh token`` signs tokens with it so that local clients can connect.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

import jwt

DEV_ISSUER = "tickmesh-dev"
AUDIENCE = "tickmesh"
ALL_MARKETS = ("equities", "crypto", "fx")


def home() -> Path:
    """Where local state lives (NATS data, the dev secret): ``TICKMESH_HOME`` or ``./.tickmesh``."""
    return Path(os.environ.get("TICKMESH_HOME", ".tickmesh")).resolve()


def dev_secret(create: bool = False) -> str | None:
    """The HS256 secret: ``TICKMESH_JWT_SECRET`` if set, else the one stored under :func:`home`
    (created with mode 0600 when ``create`` is true)."""
    env = os.environ.get("TICKMESH_JWT_SECRET")
    if env:
        return env
    path = home() / "jwt-secret"
    if path.exists():
        return path.read_text().strip()
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret + "\n")
    return secret


def mint(
    user: str,
    *,
    secret: str,
    roles: tuple[str, ...] = ("user",),
    entitlements: tuple[str, ...] = ALL_MARKETS,
    ttl: int = 3600,
    now: float | None = None,
    issuer: str = DEV_ISSUER,
    audience: str = AUDIENCE,
    name: str | None = None,
) -> str:
    """Sign a token for ``user`` valid for ``ttl`` seconds (``name``: the display name presence shows)."""
    iat = int(time.time() if now is None else now)
    claims = {
        "sub": user,
        "iss": issuer,
        "aud": audience,
        "iat": iat,
        "nbf": iat,
        "exp": iat + ttl,
        "roles": list(roles),
        "ent": list(entitlements),
    }
    if name:
        claims["name"] = name
    return jwt.encode(claims, secret, algorithm="HS256")
