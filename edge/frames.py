"""Frame encoding and decoding for the wire protocol (PROTOCOL.md).

Server frames are built once and the same bytes go to every subscriber: :func:`msg_frame`
splices an already-encoded payload into the ``msg`` frame without parsing or re-serialising it.
Several frames due at once travel as one WebSocket message holding a JSON array (:func:`batch`).
"""

from __future__ import annotations

from typing import Any

import orjson

from tickmesh.contracts.codes import ErrorCode


class FrameError(Exception):
    """A client frame that cannot be processed. Carries the protocol error code and the request
    id when one could be read, so the reply can be correlated."""

    def __init__(self, code: ErrorCode, reason: str, id: Any = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.id = id


def decode_json(data: bytes | str) -> dict[str, Any]:
    """Parse one client frame; raise :class:`FrameError` for anything that is not a JSON object."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise FrameError(ErrorCode.MALFORMED_FRAME, "frame is not valid JSON") from None
    if not isinstance(obj, dict):
        raise FrameError(ErrorCode.MALFORMED_FRAME, "frame must be a JSON object")
    return obj


def encode_json(frame: dict[str, Any]) -> bytes:
    return orjson.dumps(frame)


def ok_frame(id: Any, **extra: Any) -> bytes:
    return orjson.dumps({"op": "ok", "id": id, **extra})


def err_frame(id: Any, code: int, reason: str) -> bytes:
    return orjson.dumps({"op": "err", "id": id, "code": int(code), "reason": reason})


def msg_frame(channel: str, seq: int, payload: bytes) -> bytes:
    """``{"op":"msg","ch":...,"seq":...,"data":<payload>}`` with ``payload`` spliced in verbatim.

    ``payload`` must be one valid JSON value (the upstream adapter checks this once per message);
    ``channel`` comes from the channel grammar, which has no character that needs JSON escaping.
    """
    return b'{"op":"msg","ch":"%b","seq":%d,"data":%b}' % (channel.encode(), seq, payload)


def batch(frames: list[bytes]) -> bytes:
    """One WebSocket message for ``frames``: the frame itself, or a JSON array of them."""
    if len(frames) == 1:
        return frames[0]
    return b"[" + b",".join(frames) + b"]"
