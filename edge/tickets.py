"""Short-lived tickets for transports that cannot carry a header (EventSource, plain GETs).

``POST /ticket`` with a bearer token returns a ticket: a JWT signed with the edges' shared
ticket key, bound to the user, roles and entitlements of the token and never outliving it. Any
edge accepts it, so SSE and polling need no sticky sessions. Starting a *new* stream consumes
the ticket (an atomic create in the ``tm_tickets`` bucket, so it works once across all edges);
a request that *resumes* a stream (it carries a cursor or ``Last-Event-ID``) may reuse it until
``EDGE_TICKET_RESUME_S`` after issue, which is what lets the browser's own SSE reconnect work.
Tokens themselves never appear in a URL.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

import jwt
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from .identity import Identity

TICKET_AUDIENCE = "tickmesh-ticket"


class TicketError(Exception):
    pass


def ticket_key(jwt_secret: str, explicit: str) -> str:
    """The shared ticket key: ``EDGE_TICKET_SECRET`` or one derived from the token secret."""
    if explicit:
        return explicit
    if not jwt_secret:
        raise ValueError("set EDGE_TICKET_SECRET (no HS secret to derive the ticket key from)")
    return hmac.new(jwt_secret.encode(), b"tickmesh-ticket-key-v1", hashlib.sha256).hexdigest()


class Tickets:
    def __init__(self, key: str, *, ttl: float, resume: float) -> None:
        self.key = key
        self.ttl = ttl
        self.resume = resume
        self.kv: KeyValue | None = None

    def issue(self, identity: Identity, now: float | None = None) -> tuple[str, int]:
        now = time.time() if now is None else now
        exp = min(now + self.ttl, identity.expires_at)
        claims = {
            "sub": identity.user,
            "roles": sorted(identity.roles),
            "ent": sorted(identity.entitlements),
            "iat": int(now),
            "exp": int(exp),
            "token_exp": int(identity.expires_at),
            "token_iat": int(identity.issued_at),
            "aud": TICKET_AUDIENCE,
            "jti": secrets.token_urlsafe(12),
            "iss_at": now,
        }
        return jwt.encode(claims, self.key, algorithm="HS256"), max(0, int(exp - now))

    async def redeem(self, ticket: str, *, resuming: bool, now: float | None = None) -> Identity:
        """Check ``ticket`` and return the identity it carries; raise :class:`TicketError`."""
        now = time.time() if now is None else now
        try:
            claims = jwt.decode(
                ticket,
                self.key,
                algorithms=["HS256"],
                audience=TICKET_AUDIENCE,
                options={"require": ["sub", "exp", "jti", "token_exp"], "verify_exp": False},
            )
        except jwt.PyJWTError:
            raise TicketError("ticket invalid") from None
        issued = float(claims.get("iss_at", claims.get("iat", 0)))
        if now > claims["token_exp"]:
            raise TicketError("the token behind this ticket expired")
        limit = issued + self.resume if resuming else float(claims["exp"])
        if now > limit:
            raise TicketError("ticket expired")
        if not resuming and self.kv is not None:
            try:
                await self.kv.create(claims["jti"].replace("-", "_"), b"1")
            except KeyWrongLastSequenceError:
                raise TicketError("ticket already used") from None
        return Identity(
            user=claims["sub"],
            roles=frozenset(claims.get("roles", ())),
            entitlements=frozenset(claims.get("ent", ())),
            expires_at=float(claims["token_exp"]),
            issued_at=float(claims.get("token_iat", 0)),
        )
