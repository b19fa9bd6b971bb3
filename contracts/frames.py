"""The WebSocket frames of the wire protocol, from ``frames.toml``.

Each frame is a :class:`~tickmesh.contracts.messages.Schema` (the same field types as the
messages, plus ``request_id``), so a frame can be checked with ``Schema.validate`` like a
message. PROTOCOL.md explains the frames; the AsyncAPI document is generated from this table.
"""

from __future__ import annotations

from functools import cache

from ._data import load
from .messages import Schema, build_schema


@cache
def client_frames() -> dict[str, Schema]:
    """Frames a client sends, by ``op``."""
    return {op: build_schema(op, raw) for op, raw in load("frames.toml").get("client", {}).items()}


@cache
def server_frames() -> dict[str, Schema]:
    """Frames the edge sends, by ``op``."""
    return {op: build_schema(op, raw) for op, raw in load("frames.toml").get("server", {}).items()}
