"""Authentication against a real edge: frames, headers, deadlines, refresh, expiry, revocation,
and the JWT attacks a demanding platform must refuse."""

import asyncio
import base64
import hashlib
import hmac
import http.server
import json
import threading
import time

import jwt
import nats
import pytest
import websockets
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.support.tokens import SECRET, token
from tests.support.wsclient import Client
from tickmesh.contracts.codes import CloseCode, ErrorCode


async def closed_with(client: Client, timeout: float = 5) -> int:
    with pytest.raises(websockets.ConnectionClosed) as info:
        while True:
            await client.recv(timeout)
    return info.value.rcvd.code if info.value.rcvd else None


async def test_nothing_is_served_before_auth_then_welcome(edge):
    c = await Client.connect(edge.ws_url)
    reply, _ = await c.request("sub", ch="prices:AAPL")
    assert reply["code"] == ErrorCode.UNAUTHORIZED
    welcome, _ = await c.request("auth", token=token("alice", roles=("user",), ent=("equities",)))
    assert welcome["op"] == "welcome" and welcome["user"] == "alice" and welcome["roles"] == ["user"]
    assert welcome["heartbeat_ms"] > 0 and welcome["limits"]["max_subscriptions"] > 0
    assert welcome["conn_id"] and welcome["expires_at"] > time.time()
    await c.close()


async def test_bearer_header_authenticates_at_connect(edge):
    c = await Client.connect(edge.ws_url, additional_headers={"Authorization": f"Bearer {token('bob')}"})
    welcome = await c.recv()
    assert welcome["op"] == "welcome" and welcome["user"] == "bob"
    await c.close()


@pytest.mark.parametrize(
    "make_token,code",
    [
        (lambda: token("alice", ttl=-120), CloseCode.TOKEN_EXPIRED),
        (lambda: "not.a.jwt", CloseCode.AUTH_FAILED),
        (
            lambda: jwt.encode(
                {"sub": "alice", "exp": time.time() + 60, "iss": "tickmesh-dev", "aud": "tickmesh"},
                "another-secret-entirely-0123456789",
                algorithm="HS256",
            ),
            CloseCode.AUTH_FAILED,
        ),
        (
            lambda: jwt.encode(
                {"sub": "alice", "exp": time.time() + 60, "iss": "tickmesh-dev", "aud": "tickmesh"},
                None,
                algorithm="none",
            ),
            CloseCode.AUTH_FAILED,
        ),
        (
            lambda: jwt.encode(
                {"sub": "alice", "exp": time.time() + 60, "iss": "evil", "aud": "tickmesh"}, SECRET, algorithm="HS256"
            ),
            CloseCode.AUTH_FAILED,
        ),
        (
            lambda: jwt.encode(
                {"sub": "alice", "exp": time.time() + 60, "iss": "tickmesh-dev", "aud": "other"},
                SECRET,
                algorithm="HS256",
            ),
            CloseCode.AUTH_FAILED,
        ),
        (
            lambda: jwt.encode({"sub": "alice", "iss": "tickmesh-dev", "aud": "tickmesh"}, SECRET, algorithm="HS256"),
            CloseCode.AUTH_FAILED,
        ),
        (
            lambda: jwt.encode(
                {
                    "sub": "alice",
                    "exp": time.time() + 600,
                    "nbf": time.time() + 300,
                    "iss": "tickmesh-dev",
                    "aud": "tickmesh",
                },
                SECRET,
                algorithm="HS256",
            ),
            CloseCode.AUTH_FAILED,
        ),
        (
            lambda: jwt.encode(
                {"sub": "al ice*", "exp": time.time() + 60, "iss": "tickmesh-dev", "aud": "tickmesh"},
                SECRET,
                algorithm="HS256",
            ),
            CloseCode.AUTH_FAILED,
        ),
        (lambda: 12345, None),
    ],
)
async def test_bad_tokens_close_with_a_code_that_says_whether_to_retry(edge, make_token, code):
    c = await Client.connect(edge.ws_url)
    await c.send({"op": "auth", "id": 1, "token": make_token()})
    if code is None:  # not even a string: a field error, the connection stays
        assert (await c.recv())["code"] == ErrorCode.INVALID_FIELD
        await c.close()
        return
    assert await closed_with(c) == code


async def test_auth_deadline(edge_factory):
    edge = edge_factory(EDGE_AUTH_TIMEOUT_S="1")
    c = await Client.connect(edge.ws_url)
    assert await closed_with(c, timeout=5) == CloseCode.AUTH_TIMEOUT


async def test_refresh_extends_and_expiry_closes_with_get_a_new_token(edge_factory):
    edge = edge_factory(EDGE_JWT_LEEWAY_S="0")
    c = await Client.login(edge.ws_url, token("alice", ttl=2))
    reply, _ = await c.request("refresh", token=token("alice", ttl=3600))
    assert reply["op"] == "ok" and reply["expires_at"] > time.time() + 3000
    await asyncio.sleep(3.5)
    assert (await c.request("ping"))[0]["op"] == "pong"  # still open past the first token's exp
    reply, _ = await c.request("refresh", token=token("mallory"))
    assert reply["code"] == ErrorCode.FORBIDDEN
    await c.close()

    short = await Client.login(edge.ws_url, token("alice", ttl=2))
    assert await closed_with(short, timeout=6) == CloseCode.TOKEN_EXPIRED


async def test_revocation_closes_connections_everywhere_and_refuses_old_tokens(edge_factory, nats_mon):
    edges = [edge_factory(), edge_factory()]
    old = token("alice")
    a1 = await Client.login(edges[0].ws_url, old)
    a2 = await Client.login(edges[1].ws_url, old)
    bob = await Client.login(edges[0].ws_url, token("bob"))
    nc = await nats.connect(nats_mon.url)
    await nc.publish("tm.ctl.revoke", json.dumps({"user": "alice"}).encode())
    await nc.flush()
    assert await closed_with(a1) == CloseCode.FORBIDDEN
    assert await closed_with(a2) == CloseCode.FORBIDDEN
    again = await Client.connect(edges[0].ws_url)
    await again.send({"op": "auth", "id": 1, "token": old})
    assert await closed_with(again) == CloseCode.FORBIDDEN
    assert (await bob.request("ping"))[0]["op"] == "pong"
    await bob.close()
    await nc.close()


# -- asymmetric keys and JWKS ----------------------------------------------------------------


class _Jwks:
    """A local JWKS endpoint (the identity provider's key set), counting fetches."""

    def __init__(self) -> None:
        self.keys: list[dict] = []
        self.fetches = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.fetches += 1
                body = json.dumps({"keys": outer.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"

    def add(self, public_key, kid: str, alg: str) -> None:
        jwk = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(public_key))
        jwk.update(kid=kid, alg=alg, use="sig")
        self.keys.append(jwk)


def _claims(user="alice", **extra):
    now = time.time()
    return {"sub": user, "exp": now + 600, "iat": now, "iss": "idp", "aud": "tickmesh", "ent": ["equities"], **extra}


async def test_rs256_and_es256_from_jwks_with_key_rotation_and_no_algorithm_confusion(edge_factory):
    jwks = _Jwks()
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    jwks.add(rsa_key.public_key(), "r1", "RS256")
    edge = edge_factory(
        EDGE_JWT_ALGORITHMS="RS256,ES256,HS256",
        EDGE_JWKS_URL=jwks.url,
        EDGE_JWT_ISSUER="idp",
        EDGE_JWKS_REFETCH_COOLDOWN_S="0.5",
    )
    try:
        c = await Client.login(edge.ws_url, jwt.encode(_claims(), rsa_key, algorithm="RS256", headers={"kid": "r1"}))
        await c.close()
        # Rotation: a new key appears at the IdP; a token naming its kid makes the edge refetch.
        jwks.add(ec_key.public_key(), "e1", "ES256")
        await asyncio.sleep(0.6)
        fetches = jwks.fetches
        c = await Client.login(
            edge.ws_url, jwt.encode(_claims("bob"), ec_key, algorithm="ES256", headers={"kid": "e1"})
        )
        assert jwks.fetches > fetches
        await c.close()
        # Algorithm confusion: the RSA public key (public knowledge) used as an HMAC secret.
        pem = rsa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

        def b64(b):
            return base64.urlsafe_b64encode(b).rstrip(b"=")

        signing_input = (
            b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "r1"}).encode())
            + b"."
            + b64(json.dumps(_claims("mallory")).encode())
        )
        forged = (signing_input + b"." + b64(hmac.new(pem, signing_input, hashlib.sha256).digest())).decode()
        c = await Client.connect(edge.ws_url)
        await c.send({"op": "auth", "id": 1, "token": forged})
        assert await closed_with(c) == CloseCode.AUTH_FAILED
        # A token signed by a key the IdP never published.
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        c = await Client.connect(edge.ws_url)
        await c.send(
            {"op": "auth", "id": 1, "token": jwt.encode(_claims(), stranger, algorithm="RS256", headers={"kid": "zz"})}
        )
        assert await closed_with(c) == CloseCode.AUTH_FAILED
    finally:
        jwks.server.shutdown()
