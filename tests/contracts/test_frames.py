"""frames.toml states the frames the edge really speaks and PROTOCOL.md shows."""

from __future__ import annotations

import json
import re
from pathlib import Path

import orjson

from tickmesh.contracts.frames import client_frames, server_frames
from tickmesh.contracts.messages import ContractError, Schema
from tickmesh.edge import session as session_module
from tickmesh.edge.identity import Identity
from tickmesh.edge.session import Session, SessionLimits

PROTOCOL = Path(__file__).resolve().parents[2] / "contracts" / "PROTOCOL.md"
ALICE = Identity("alice", frozenset({"user"}), frozenset({"equities"}), expires_at=10_000.0, issued_at=0.0)


def _check(frame: dict, table: dict[str, Schema]) -> None:
    body = dict(frame)
    op = body.pop("op")
    assert op in table, f"op {op!r} is not in frames.toml"
    table[op].validate(body)


def _examples() -> list[dict]:
    """Every frame object in the ```json blocks of PROTOCOL.md."""
    out = []
    decoder = json.JSONDecoder()
    for block in re.findall(r"```json\n(.*?)```", PROTOCOL.read_text(), re.S):
        text, i = block, 0
        while True:
            while i < len(text) and text[i] in " \n\t":
                i += 1
            if i >= len(text):
                break
            obj, i = decoder.raw_decode(text, i)
            out.extend(obj if isinstance(obj, list) else [obj])
    return [o for o in out if isinstance(o, dict) and "op" in o]


def test_every_op_the_edge_handles_is_a_client_frame():
    assert set(session_module._HANDLERS) <= set(client_frames())


def test_every_documented_example_frame_follows_frames_toml():
    examples = _examples()
    assert len(examples) > 20
    for frame in examples:
        errors = []
        for table in (client_frames(), server_frames()):
            if frame["op"] in table:
                try:
                    _check(frame, table)
                    break
                except ContractError as exc:
                    errors.append(str(exc))
        else:
            raise AssertionError(f"{frame} follows neither frame table: {errors}")


def test_frames_the_session_core_sends_follow_frames_toml():
    s = Session(
        conn_id="c1",
        now=0.0,
        identity=None,
        channel_exists=lambda ch: True,
        limits=SessionLimits(auth_timeout=5, heartbeat_interval=10, max_subscriptions=3, max_frame_bytes=500),
    )
    sent: list[dict] = []

    def feed(frame: dict, now: float = 1.0) -> None:
        s.receive_frame(orjson.dumps(frame), now)
        sent.extend(orjson.loads(o) for o in s.take() if isinstance(o, bytes))

    feed({"op": "ping", "id": 1})
    feed({"op": "sub", "id": 2, "ch": "prices:AAPL"})  # before auth: err
    feed({"op": "auth", "id": 3, "token": "t"})
    s.auth_result(ALICE, 2.0, rid=3, refresh=False)
    sent.extend(orjson.loads(o) for o in s.take() if isinstance(o, bytes))
    feed({"op": "sub", "id": 4, "ch": "nope:x"}, 3.0)
    feed({"op": "unsub", "id": 5, "ch": "prices:AAPL"}, 3.0)
    feed({"op": "frobnicate", "id": "x"}, 3.0)
    s.tick(15.0)  # heartbeat
    sent.extend(orjson.loads(o) for o in s.take() if isinstance(o, bytes))
    ops = [f["op"] for f in sent]
    assert {"pong", "err", "welcome", "ping"} <= set(ops), ops
    for frame in sent:
        _check(frame, server_frames())
