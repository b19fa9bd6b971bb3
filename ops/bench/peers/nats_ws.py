"""Peer: nats-server's built-in WebSocket listener, the reference limit for this machine.

Clients speak the NATS protocol over WebSocket (CONNECT, SUB, then MSG) to the same server the
bench publishes into, so there is no bridge process at all: this is what the hardware allows.
"""

from __future__ import annotations

from pathlib import Path


def write_config(path: Path, *, client_port: int, ws_port: int | None, store: Path) -> Path:
    """A nats-server configuration: clients on ``client_port``, JetStream stored under ``store``
    (the edge needs it for event streams), WebSocket (no TLS) on ``ws_port`` if given."""
    lines = [
        'listen: "127.0.0.1:%d"' % client_port,
        'server_name: "tickmesh-bench"',
        "max_payload: 1048576",
        'jetstream { store_dir: "%s" }' % store,
    ]
    if ws_port is not None:
        lines += ["websocket {", '  listen: "127.0.0.1:%d"' % ws_port, "  no_tls: true", "  compression: false", "}"]
    path.write_text("\n".join(lines) + "\n")
    return path
