"""HTTP hygiene of the edge: security headers on every response, and capped request bodies.

Headers (every HTTP response Quart serves, on both engines; WebSocket handshakes carry none):

- ``Content-Security-Policy``: the dashboard's policy. Scripts, styles, workers and fonts only
  from the edge's own origin (no inline script or style, no ``eval``), images from it or
  ``data:`` (the favicon), connections to it over HTTP(S) and to its own ``ws://``/``wss://``,
  no plugins, no ``<base>``, and no framing (``frame-ancestors 'none'``, with the older
  ``X-Frame-Options: DENY`` for browsers that predate it).
- ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer`` (tickets travel in
  query strings of ``/sse`` and ``/poll``: no referrer may carry them elsewhere).
- ``Strict-Transport-Security`` when the edge serves TLS itself (``EDGE_HSTS_MAX_AGE_S``).
- ``Cache-Control: no-store`` on answers that carry credentials or a command's outcome
  (``/ticket``, ``/cmd``, ``/dev/token``): no cache, shared or private, may keep them.

Bodies: a request announcing more than ``EDGE_MAX_BODY_BYTES`` is refused before it is read,
a chunked one as soon as it grows past the cap (Quart's ``MAX_CONTENT_LENGTH``), both with 413
and error 103; a body that does not arrive within ``EDGE_BODY_TIMEOUT_S`` gets 408 with
error 401 (Quart's ``BODY_TIMEOUT``). Both answers are ``err`` frames like every refusal.
"""

from __future__ import annotations

import re

import orjson
from quart import Quart, Response, request
from werkzeug.exceptions import RequestEntityTooLarge, RequestTimeout

from tickmesh.contracts.codes import ErrorCode

from .settings import EdgeSettings

NO_STORE_PATHS = frozenset({"/ticket", "/cmd", "/dev/token"})
# A Host header that is a plain host name or address with an optional port: only such a value is
# named in connect-src (anything else, 'self' still covers the page's own origin).
_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?$")

_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "worker-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; "
    "connect-src 'self'"
)


def content_security_policy(host: str | None) -> str:
    """The dashboard's policy; ``host`` (the request's Host) names the edge's own WebSocket
    origins explicitly, for browsers whose ``'self'`` does not cover ``ws:``/``wss:``."""
    if host and _HOST.match(host):
        return f"{_POLICY} ws://{host} wss://{host}"
    return _POLICY


def _refusal(code: int, reason: str, status: int) -> Response:
    return Response(
        orjson.dumps({"op": "err", "code": int(code), "reason": reason}), status=status, content_type="application/json"
    )


def register(app: Quart, settings: EdgeSettings) -> None:
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.config["BODY_TIMEOUT"] = settings.body_timeout
    hsts = f"max-age={settings.hsts_max_age}" if settings.tls and settings.hsts_max_age > 0 else None
    too_large = f"request body exceeds {settings.max_body_bytes} bytes"
    too_slow = f"request body not received within {settings.body_timeout:g} s"

    @app.before_request
    async def cap_body():
        length = request.content_length
        if length is not None and length > settings.max_body_bytes:
            return _refusal(ErrorCode.FRAME_TOO_LARGE, too_large, 413)
        return None

    @app.errorhandler(RequestEntityTooLarge)
    async def body_too_large(_exc):
        return _refusal(ErrorCode.FRAME_TOO_LARGE, too_large, 413)

    @app.errorhandler(RequestTimeout)
    async def body_too_slow(_exc):
        return _refusal(ErrorCode.REQUEST_TIMEOUT, too_slow, 408)

    @app.after_request
    async def security_headers(response: Response) -> Response:
        headers = response.headers
        headers["Content-Security-Policy"] = content_security_policy(request.headers.get("Host"))
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "no-referrer"
        headers["X-Frame-Options"] = "DENY"
        if hsts is not None:
            headers["Strict-Transport-Security"] = hsts
        if request.path in NO_STORE_PATHS:
            headers["Cache-Control"] = "no-store"
        return response
