"""Keys and records of the ``tm_presence`` KV bucket: the contract between edges.

Keys (every variable part escaped with :func:`encode_token`, so nothing a client chose can reach
a subject as a wildcard or separator)::

    m.<edge>.<topic-token>.<user-token>   one edge's record of one user in one topic
    e.<edge>                              the edge's lease (per-key TTL, renewed every heartbeat)

The edge comes first in member keys so that a dead edge's keys are found with one filter
(``m.<edge>.>``), and a topic's keys with ``m.*.<topic-token>.*``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from tickmesh.contracts import streams as table
from tickmesh.contracts.channels import USER_ID_RE, decode_token, encode_token, parse_topic

BUCKET = table.bucket("presence").name
MAX_NAME = 64
MAX_DATA_BYTES = 256
_EDGE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


def check_edge_id(edge: str) -> str:
    if not 1 <= len(edge) <= 40 or not set(edge) <= _EDGE_CHARS:
        raise ValueError(f"bad edge id {edge!r}")
    return edge


def member_key(edge: str, topic: str, user: str) -> str:
    return f"m.{check_edge_id(edge)}.{encode_token(topic)}.{encode_token(user)}"


def topic_filter(topic: str) -> str:
    """Watch filter for every edge's records of ``topic``."""
    return f"m.*.{encode_token(topic)}.*"


def edge_filter(edge: str) -> str:
    return f"m.{check_edge_id(edge)}.>"


def lease_key(edge: str) -> str:
    return f"e.{check_edge_id(edge)}"


LEASE_FILTER = "e.*"
MEMBERS_FILTER = "m.>"


@dataclass(frozen=True, slots=True)
class MemberKey:
    edge: str
    topic: str
    user: str


def parse_member_key(key: str) -> MemberKey:
    """Invert :func:`member_key`; raises ValueError for anything it would not have produced."""
    parts = key.split(".")
    if len(parts) != 4 or parts[0] != "m":
        raise ValueError(f"not a member key: {key!r}")
    topic = parse_topic(decode_token(parts[2])).name
    user = decode_token(parts[3])
    if not USER_ID_RE.fullmatch(user):
        raise ValueError(f"bad user in {key!r}")
    return MemberKey(check_edge_id(parts[1]), topic, user)


def parse_lease_key(key: str) -> str:
    if not key.startswith("e."):
        raise ValueError(f"not a lease key: {key!r}")
    return check_edge_id(key[2:])


@dataclass(frozen=True, slots=True)
class Record:
    """One edge's record of one user in one topic.

    ``conns``: that user's joined connections on that edge; ``since``: when the earliest of them
    joined (µs); ``at``: when ``data`` was last set (µs), so that across edges the most recent
    ``data`` wins.
    """

    name: str
    conns: int
    data: Any
    since: int
    at: int

    def encode(self) -> bytes:
        body: dict[str, Any] = {"name": self.name, "conns": self.conns, "since": self.since, "at": self.at}
        if self.data is not None:
            body["data"] = self.data
        return orjson.dumps(body)


def decode_record(value: bytes) -> Record:
    """Parse a stored record; raises ValueError when it is not one (a bad write is ignored)."""
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise ValueError("record is not JSON") from None
    if not isinstance(obj, dict):
        raise ValueError("record is not an object")
    name, conns, since, at = obj.get("name"), obj.get("conns"), obj.get("since"), obj.get("at")
    if not isinstance(name, str) or len(name) > MAX_NAME:
        raise ValueError("bad name")
    if type(conns) is not int or conns < 1 or type(since) is not int or type(at) is not int:
        raise ValueError("bad counts or times")
    return Record(name, conns, obj.get("data"), since, at)


def lease_value(edge: str, heartbeat: float, now_us: int) -> bytes:
    return orjson.dumps({"edge": edge, "heartbeat_s": heartbeat, "ts": now_us})
