"""Token verification for the edge (pyjwt).

HS256 tokens are checked with a shared secret (development); RS256/ES256 tokens with a public
key from a file or from a JWKS URL, fetched in a worker thread, cached, and fetched again when a
token names an unknown ``kid``. The key family is chosen from the configured algorithms, never
from what the token claims, so an RSA public key can never be used as an HMAC secret, and
``alg: none`` or any algorithm not configured is refused.

The verifier returns an :class:`Identity` or an :class:`AuthFailure` carrying the close code:
4003 for an expired token (get a new one), 4101 for anything else (do not retry with it).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from tickmesh.contracts.channels import USER_ID_RE
from tickmesh.contracts.codes import CloseCode

from .identity import AuthFailure, Identity

log = logging.getLogger(__name__)

_HMAC = {"HS256", "HS384", "HS512"}
_ASYMMETRIC = {"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA"}
_MAX_TOKEN_BYTES = 8192
CACHE_SIZE = 10_000  # verified tokens remembered (until they expire)


@dataclass(frozen=True)
class AuthConfig:
    algorithms: tuple[str, ...]
    issuer: str
    audience: str
    leeway: float
    secret: str | None = None
    public_key_file: str | None = None
    jwks_url: str | None = None
    jwks_refetch_cooldown: float = 30.0


class Verifier:
    def __init__(self, config: AuthConfig) -> None:
        self.config = config
        algs = set(config.algorithms)
        unknown = algs - _HMAC - _ASYMMETRIC
        if unknown or not algs:
            raise ValueError(f"unsupported JWT algorithms: {sorted(unknown) or 'none configured'}")
        self._hmac_algs = sorted(algs & _HMAC)
        self._asym_algs = sorted(algs & _ASYMMETRIC)
        if self._hmac_algs and not config.secret:
            raise ValueError("HS* algorithms need a secret (TICKMESH_JWT_SECRET)")
        if self._asym_algs and not (config.public_key_file or config.jwks_url):
            raise ValueError("RS*/ES* algorithms need EDGE_JWT_PUBLIC_KEY_FILE or EDGE_JWKS_URL")
        self._cache: dict[str, Identity] = {}
        self._public_key: Any = None
        if config.public_key_file:
            self._public_key = Path(config.public_key_file).read_bytes()
        self._jwks = None
        if config.jwks_url:
            # An unknown kid triggers at most one refetch per cooldown, so a flood of forged kids
            # cannot hammer the identity provider.
            extra: dict[str, Any] = {}
            if "cooldown_duration" in inspect.signature(jwt.PyJWKClient).parameters:
                extra["cooldown_duration"] = config.jwks_refetch_cooldown
            self._jwks = jwt.PyJWKClient(config.jwks_url, cache_keys=True, lifespan=3600, timeout=5, **extra)

    async def verify(self, token: object, now: float) -> Identity | AuthFailure:
        """Verify ``token``; never raises. A token verified before is answered from a bounded
        cache until it expires (a reconnect storm re-presents the same tokens; checking a
        signature costs far more than the rest of a connection's opening)."""
        result = self.verify_now(token, now)
        if result is not None:
            return result
        assert isinstance(token, str)
        try:
            header = jwt.get_unverified_header(token)
            key = await self._asymmetric_key(token, header)
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            return AuthFailure(int(CloseCode.AUTH_FAILED), *_reason(exc))
        return self._remember(token, self._decode(token, key, self._asym_algs))

    def verify_now(self, token: object, now: float) -> Identity | AuthFailure | None:
        """The answer when it needs no I/O (a malformed token, a cached one, an HMAC token or a
        static public key), else None: then :meth:`verify` must be awaited (a JWKS lookup)."""
        if not isinstance(token, str) or not token or len(token) > _MAX_TOKEN_BYTES:
            return AuthFailure(int(CloseCode.AUTH_FAILED), "token missing or malformed", "missing")
        cached = self._cache.get(token)
        if cached is not None:
            if now <= cached.expires_at + self.config.leeway:
                return cached
            del self._cache[token]
        if not self._asym_algs:
            # HMAC only: pyjwt checks the token's alg against these and refuses "none".
            return self._remember(token, self._decode(token, self.config.secret, self._hmac_algs))
        try:
            alg = jwt.get_unverified_header(token).get("alg")
        except jwt.PyJWTError:
            return AuthFailure(int(CloseCode.AUTH_FAILED), "token is not a JWT", "malformed")
        if alg in self._hmac_algs:
            return self._remember(token, self._decode(token, self.config.secret, self._hmac_algs))
        if alg not in self._asym_algs:
            return AuthFailure(int(CloseCode.AUTH_FAILED), f"algorithm {str(alg)[:10]!r} not accepted", "malformed")
        if self._jwks is None:
            return self._remember(token, self._decode(token, self._public_key, self._asym_algs))
        return None

    def _remember(self, token: str, result: Identity | AuthFailure) -> Identity | AuthFailure:
        if isinstance(result, Identity):
            if len(self._cache) >= CACHE_SIZE:
                del self._cache[next(iter(self._cache))]  # the oldest entry
            self._cache[token] = result
        return result

    def _decode(self, token: str, key: Any, algorithms: list[str]) -> Identity | AuthFailure:
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway,
                options={"require": ["sub", "exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            return AuthFailure(int(CloseCode.TOKEN_EXPIRED), "token expired", "expired")
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            return AuthFailure(int(CloseCode.AUTH_FAILED), *_reason(exc))
        return _identity(claims)

    async def _asymmetric_key(self, token: str, header: dict[str, Any]) -> Any:
        if self._jwks is not None and header.get("kid"):
            # PyJWKClient does blocking HTTP: keep it off the event loop. It refetches the set
            # when the kid is unknown (key rotation) and caches it otherwise.
            signing = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)
            return signing.key
        if self._public_key is not None:
            return self._public_key
        raise jwt.InvalidTokenError("token has no kid and no static public key is configured")


def _reason(exc: Exception) -> tuple[str, str]:
    """The reason for people and the metrics kind of a refused token."""
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"token lacks the {exc.claim!r} claim", "missing"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "token audience not accepted", "wrong_audience"
    if isinstance(exc, jwt.InvalidIssuerError):
        return "token issuer not accepted", "wrong_issuer"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "token not valid yet", "not_yet_valid"
    if isinstance(exc, jwt.InvalidSignatureError):
        return "token signature invalid", "bad_signature"
    if isinstance(exc, jwt.PyJWKClientError):
        return "signing key not found", "bad_signature"
    return "token invalid", "malformed"


def _strings(value: Any, default: tuple[str, ...]) -> frozenset[str]:
    if value is None:
        return frozenset(default)
    if isinstance(value, list) and all(isinstance(v, str) and len(v) <= 64 for v in value):
        return frozenset(value[:64])
    raise ValueError("roles and ent must be lists of strings")


def _identity(claims: dict[str, Any]) -> Identity | AuthFailure:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not USER_ID_RE.fullmatch(sub):
        return AuthFailure(int(CloseCode.AUTH_FAILED), "token subject is not a valid user id", "malformed")
    try:
        roles = _strings(claims.get("roles"), ("user",))
        ents = _strings(claims.get("ent"), ())
    except ValueError as exc:
        return AuthFailure(int(CloseCode.AUTH_FAILED), str(exc), "malformed")
    iat = claims.get("iat")
    jti = claims.get("jti")
    name = claims.get("name")  # display name for presence; anything unusable falls back to the id
    return Identity(
        user=sub,
        roles=roles,
        entitlements=ents,
        expires_at=float(claims["exp"]),
        issued_at=float(iat) if isinstance(iat, (int, float)) else 0.0,
        jti=jti if isinstance(jti, str) and len(jti) <= 128 else None,
        name=name.strip() if isinstance(name, str) and 0 < len(name.strip()) <= 64 else None,
    )
