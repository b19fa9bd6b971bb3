"""Development-only routes (``EDGE_DEV_MODE=on``, set by ``tickmesh up``): a demo login.

``POST /dev/token`` signs a token for a demo user with the local development secret, so the
dashboard can log in without an identity provider. These routes do not exist unless dev mode is
on; production tokens come from the platform's identity provider.
"""

from __future__ import annotations

import time

from quart import Quart, request

from tickmesh import devtokens
from tickmesh.contracts.channels import USER_ID_RE

from .state import EdgeState

DEMO_USERS = (
    {"id": "alice", "name": "Alice Martin", "roles": ["user"]},
    {"id": "bob", "name": "Bob Okafor", "roles": ["user"]},
    {"id": "carol", "name": "Carol Tanaka", "roles": ["user"]},
    {"id": "support1", "name": "Sam Support", "roles": ["support"]},
    {"id": "admin", "name": "Ada Admin", "roles": ["admin"]},
)


def register(app: Quart, state: EdgeState) -> None:
    settings = state.settings

    @app.get("/dev/users")
    async def dev_users():
        return {"users": list(DEMO_USERS)}

    @app.post("/dev/token")
    async def dev_token():
        body = await request.get_json(silent=True) or {}
        user = body.get("user")
        if not isinstance(user, str) or not USER_ID_RE.fullmatch(user):
            return {"op": "err", "code": 102, "reason": "user must be a valid user id"}, 400
        now = time.time()
        refusal = state.admission.http_address(request.remote_addr or "?", now) or state.admission.http_user(user, now)
        if refusal is not None:
            return refusal.frame(), refusal.http_status
        demo = next((u for u in DEMO_USERS if u["id"] == user), None)
        roles = tuple(demo["roles"]) if demo else ("user",)
        ttl = 3600
        token = devtokens.mint(
            user,
            secret=settings.jwt_secret,
            roles=roles,
            ttl=ttl,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            name=str(demo["name"]) if demo else None,
        )
        return {"token": token, "expires_in": ttl}
