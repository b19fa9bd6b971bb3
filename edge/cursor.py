"""Cursors for SSE and polling: the positions of all a stream's channels in one opaque string.

A cursor lets a client continue on any edge with no server-side state: it is the SSE event
``id`` (so the browser's ``Last-Event-ID`` carries it back) and the ``cursor`` of long polling.
It holds, per channel, the epoch (event channels) and the last position delivered. It is plain
base64url JSON, not a secret and not trusted: every position is checked like a ``since``.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

MAX_CURSOR_LENGTH = 8192
Positions = dict[str, tuple[str | None, int]]


class CursorError(ValueError):
    pass


def encode(positions: Positions) -> str:
    body = {ch: [epoch, seq] for ch, (epoch, seq) in sorted(positions.items())}
    return base64.urlsafe_b64encode(orjson.dumps({"v": 1, "p": body})).rstrip(b"=").decode()


def decode(cursor: str) -> Positions:
    if not cursor:
        return {}
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise CursorError("cursor too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        obj: Any = orjson.loads(raw)
    except (ValueError, orjson.JSONDecodeError):
        raise CursorError("cursor is not one this server issued") from None
    if not isinstance(obj, dict) or obj.get("v") != 1 or not isinstance(obj.get("p"), dict):
        raise CursorError("cursor is not one this server issued")
    out: Positions = {}
    for ch, pos in obj["p"].items():
        if (
            not isinstance(ch, str)
            or not isinstance(pos, list)
            or len(pos) != 2
            or not (pos[0] is None or (isinstance(pos[0], str) and len(pos[0]) <= 32))
            or type(pos[1]) is not int
            or not 0 <= pos[1] < 2**63
        ):
            raise CursorError("cursor is malformed")
        out[ch] = (pos[0], pos[1])
    return out
