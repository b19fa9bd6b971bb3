"""TLS on the edge itself, on both WebSocket engines: ``wss://`` and ``https://`` with a
certificate made in the test, TLS 1.2+ only, and mutual TLS with a client CA."""

from __future__ import annotations

import asyncio
import ssl
import warnings

import aiohttp
import pytest
import websockets

from tests.support import certs
from tests.support.procs import EdgeProcess
from tests.support.timing import t
from tests.support.tokens import token
from tests.support.wsclient import Client
from tickmesh.config import ConfigError
from tickmesh.edge import tls
from tickmesh.edge.settings import EdgeSettings


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    return certs.make(tmp_path_factory.mktemp("certs"))


def client_context(made, *, with_cert: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=made.ca)
    if with_cert:
        context.load_cert_chain(made.client_cert, made.client_key)
    return context


def tls_env(made, **extra: str) -> dict[str, str]:
    return {"EDGE_TLS_CERT_FILE": made.cert, "EDGE_TLS_KEY_FILE": made.key, **extra}


async def test_wss_and_https_carry_the_protocol(made, nats_mon, tmp_path, engine):
    context = client_context(made)
    edge = EdgeProcess(nats_mon.url, tmp_path, context=context, EDGE_WS_ENGINE=engine, **tls_env(made))
    try:
        assert edge.ws_url.startswith("wss://")
        client = await Client.login(edge.ws_url, token("alice"), ssl=context, subprotocols=["tickmesh.v1.json"])
        pong, _ = await client.request("ping")
        assert pong["op"] == "pong"
        reply, _ = await client.request("sub", ch="announcements")
        assert reply["op"] == "ok", reply
        await client.close()

        async with aiohttp.ClientSession() as http:
            async with http.get(f"{edge.http}/readyz", ssl=context) as resp:
                assert resp.status == 200
                assert resp.headers["Strict-Transport-Security"] == "max-age=31536000"
            async with http.post(
                f"{edge.http}/ticket", ssl=context, headers={"Authorization": f"Bearer {token('alice')}"}
            ) as resp:
                assert resp.status == 200, await resp.text()
                assert resp.headers["Cache-Control"] == "no-store"
                ticket = (await resp.json())["ticket"]
            async with http.get(
                f"{edge.http}/poll", ssl=context, params=[("ticket", ticket), ("ch", "announcements")]
            ) as resp:
                assert resp.status == 200
                body = await resp.json()
                assert any(f["op"] == "ok" and f["id"] == "announcements" for f in body["frames"]), body

        # The port speaks TLS only: a plain request gets no HTTP answer.
        with pytest.raises((aiohttp.ClientError, asyncio.TimeoutError)):
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=t(5))) as http:
                async with http.get(f"http://127.0.0.1:{edge.port}/readyz") as resp:
                    await resp.read()
    finally:
        edge.stop()


async def _handshake(port: int, context: ssl.SSLContext) -> ssl.SSLObject:
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="127.0.0.1"), t(5)
    )
    obj = writer.get_extra_info("ssl_object")
    writer.close()
    return obj


async def test_only_tls_12_and_newer_with_forward_secret_suites(made, nats_mon, tmp_path, engine):
    context = client_context(made)
    edge = EdgeProcess(nats_mon.url, tmp_path, context=context, EDGE_WS_ENGINE=engine, **tls_env(made))
    try:
        assert (await _handshake(edge.port, context)).version() == "TLSv1.3"
        assert (await _handshake(edge.port, context)).selected_alpn_protocol() is None  # no ALPN offered

        tls12 = client_context(made)
        tls12.maximum_version = ssl.TLSVersion.TLSv1_2
        tls12.set_alpn_protocols(["h2", "http/1.1"])
        obj = await _handshake(edge.port, tls12)
        assert obj.version() == "TLSv1.2"
        assert obj.cipher()[0].startswith("ECDHE-") and ("GCM" in obj.cipher()[0] or "CHACHA" in obj.cipher()[0])
        assert obj.selected_alpn_protocol() == "http/1.1"  # never h2: /ws must reach the engine

        # A TLS 1.2 client offering only CBC suites (usable with this ECDSA key, but not AEAD) is
        # refused.
        cbc = client_context(made)
        cbc.maximum_version = ssl.TLSVersion.TLSv1_2
        cbc.set_ciphers("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384:ECDHE-ECDSA-AES128-SHA256")
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await _handshake(edge.port, cbc)

        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.check_hostname, old.verify_mode = False, ssl.CERT_NONE
        old.set_ciphers("ALL:@SECLEVEL=0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # that is the point
            old.minimum_version = ssl.TLSVersion.TLSv1
            old.maximum_version = ssl.TLSVersion.TLSv1_1
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await _handshake(edge.port, old)
    finally:
        edge.stop()


async def test_a_client_ca_requires_a_client_certificate(made, nats_mon, tmp_path, engine):
    with_cert = client_context(made, with_cert=True)
    edge = EdgeProcess(
        nats_mon.url,
        tmp_path,
        context=with_cert,
        EDGE_WS_ENGINE=engine,
        **tls_env(made, EDGE_TLS_CLIENT_CA_FILE=made.client_ca),
    )
    try:
        client = await Client.login(edge.ws_url, token("alice"), ssl=with_cert)
        assert (await client.request("ping"))[0]["op"] == "pong"
        await client.close()

        # Without a certificate the handshake fails (TLS 1.3 reports it on the first read): no
        # upgrade, no HTTP answer.
        with pytest.raises((ssl.SSLError, ConnectionError, websockets.exceptions.InvalidMessage, EOFError)):
            ws = await asyncio.wait_for(websockets.connect(edge.ws_url, ssl=client_context(made)), t(5))
            await ws.close()
        with pytest.raises(aiohttp.ClientError):
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{edge.http}/readyz", ssl=client_context(made)) as resp:
                    await resp.read()
    finally:
        edge.stop()


def test_bad_tls_settings_name_the_setting(made, tmp_path):
    with pytest.raises(ConfigError) as exc:
        EdgeSettings(tls_cert_file=made.cert, jwt_secret="s").validate()
    assert exc.value.env == "EDGE_TLS_KEY_FILE"
    with pytest.raises(ConfigError) as exc:
        EdgeSettings(tls_client_ca_file=made.client_ca, jwt_secret="s").validate()
    assert exc.value.env == "EDGE_TLS_CLIENT_CA_FILE"
    with pytest.raises(ConfigError) as exc:  # the client key does not belong to the server certificate
        tls.server_context(cert_file=made.cert, key_file=made.client_key)
    assert exc.value.env == "EDGE_TLS_CERT_FILE"
    with pytest.raises(ConfigError) as exc:
        tls.server_context(cert_file=made.cert, key_file=str(tmp_path / "missing.pem"))
    assert exc.value.env == "EDGE_TLS_KEY_FILE"
    assert tls.context_for(EdgeSettings(jwt_secret="s")) is None
    context = tls.context_for(EdgeSettings(jwt_secret="s", tls_cert_file=made.cert, tls_key_file=made.key))
    assert context is not None and context.minimum_version == ssl.TLSVersion.TLSv1_2


@pytest.mark.engines("direct")
def test_the_edge_refuses_to_start_with_a_broken_key(made, nats_mon, tmp_path, engine):
    with pytest.raises(RuntimeError, match="exited with 2"):
        EdgeProcess(
            nats_mon.url,
            tmp_path,
            EDGE_WS_ENGINE=engine,
            EDGE_TLS_CERT_FILE=made.cert,
            EDGE_TLS_KEY_FILE=made.client_key,
        )
