"""TLS on the edge itself: one ``ssl.SSLContext`` for both WebSocket engines.

The direct engine listens itself (``loop.create_server(..., ssl=context)`` in :mod:`server`), so
every connection, WebSocket or HTTP, is decrypted before the front door reads its head; the
``quart`` engine hands the same context to Hypercorn. Either way the edge offers what this
module builds, and nothing else:

- TLS 1.2 and 1.3 only; for TLS 1.2 only forward-secret AEAD suites (ECDHE with AES-GCM or
  ChaCha20-Poly1305); no TLS compression, no renegotiation.
- ALPN ``http/1.1`` only: the front door reads HTTP/1.1 request heads, and a WebSocket over
  HTTP/2 (RFC 8441) would bypass the direct engine, so both engines speak the same protocol.
- With ``EDGE_TLS_CLIENT_CA_FILE`` every client must present a certificate signed by that CA
  (mutual TLS, e.g. behind a service mesh or for server-to-server clients); a handshake without
  one fails before any HTTP is read.

Problems with the files (missing, unreadable, a key that does not match the certificate) are a
:class:`~tickmesh.config.ConfigError` at start-up naming the setting, never a half-working edge.
"""

from __future__ import annotations

import os
import ssl
from typing import TYPE_CHECKING

from tickmesh.config import ConfigError

if TYPE_CHECKING:
    from .settings import EdgeSettings

# Forward-secret AEAD suites for TLS 1.2 (TLS 1.3's suites are all AEAD and set by OpenSSL).
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
ALPN = ("http/1.1",)


def server_context(*, cert_file: str, key_file: str, client_ca_file: str = "") -> ssl.SSLContext:
    """A server context for the edge; raises :class:`ConfigError` naming the bad setting."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_RENEGOTIATION
    context.set_ciphers(TLS12_CIPHERS)
    context.set_alpn_protocols(list(ALPN))
    for env, path in (
        ("EDGE_TLS_CERT_FILE", cert_file),
        ("EDGE_TLS_KEY_FILE", key_file),
        ("EDGE_TLS_CLIENT_CA_FILE", client_ca_file),
    ):
        if path and not os.path.isfile(path):
            raise ConfigError(env, path, "no such file")
    try:
        context.load_cert_chain(certfile=cert_file, keyfile=key_file)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            "EDGE_TLS_CERT_FILE",
            cert_file,
            f"cannot load the certificate chain with EDGE_TLS_KEY_FILE={key_file!r} "
            f"(PEM certificate and its matching unencrypted private key expected): {exc}",
        ) from None
    if client_ca_file:
        try:
            context.load_verify_locations(cafile=client_ca_file)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                "EDGE_TLS_CLIENT_CA_FILE", client_ca_file, f"cannot load the client CA bundle (PEM expected): {exc}"
            ) from None
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def context_for(settings: EdgeSettings) -> ssl.SSLContext | None:
    """The edge's context, or None when TLS is off (no certificate configured)."""
    if not settings.tls:
        return None
    return server_context(
        cert_file=settings.tls_cert_file, key_file=settings.tls_key_file, client_ca_file=settings.tls_client_ca_file
    )
