"""The JetStream streams and KV buckets of tickmesh, from ``streams.toml``.

This is the table every other part reads: ``tickmesh.streams`` creates the streams and buckets
from it, the edge finds the stream that stores a subject here (:func:`stream_for_subject`), the
NATS permissions and the AsyncAPI document are derived from it. Stream subjects are derived from
channel kinds by :func:`tickmesh.contracts.channels.wildcard`, so a subject is still spelled in
one place only.

The table is checked when it is first read (unknown class, a limit naming no retention setting,
two streams storing the same subject, ...): a mistake in ``streams.toml`` fails at import, in
every test, never in production.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from ._data import load
from .channels import Kind, wildcard

LIMITS = ("max_age", "max_msgs", "max_msgs_per_subject")
CLASSES = ("state", "event", "control")
_TYPES = {"int": int, "float": float}


@dataclass(frozen=True, slots=True)
class RetentionSetting:
    """A retention limit users may change: ``env`` overrides ``default`` (of type ``type``)."""

    key: str
    env: str
    type: type
    default: int | float
    doc: str


@dataclass(frozen=True, slots=True)
class Stream:
    key: str
    name: str
    cls: str  # "state" or "event"
    channels: tuple[Kind, ...]
    subjects: tuple[str, ...]  # every pattern the stream stores (derived from channels, then literal ones)
    limits: tuple[tuple[str, int | float | str], ...]  # (limit, number or retention key)
    doc: str

    def limit_values(self, retention: Mapping[str, int | float]) -> dict[str, int | float]:
        """The stream's limits with retention keys resolved from ``retention`` (key -> value)."""
        return {limit: retention[v] if isinstance(v, str) else v for limit, v in self.limits}


@dataclass(frozen=True, slots=True)
class Bucket:
    key: str
    name: str
    ttl: int | float | str | None  # seconds, a retention key, or None (keys never expire)
    doc: str
    history: int = 1  # revisions kept per key (1 to 64)
    marker_ttl: float | None = None  # per-key TTLs allowed; expiry leaves a marker this long
    republish: str | None = None  # every stored revision is republished on this subject pattern

    def republish_src(self) -> str:
        return f"$KV.{self.name}.>"

    def ttl_value(self, retention: Mapping[str, int | float]) -> float:
        """Seconds a key lives (0: forever), with a retention key resolved from ``retention``."""
        if self.ttl is None:
            return 0.0
        return float(retention[self.ttl] if isinstance(self.ttl, str) else self.ttl)


class StreamTableError(ValueError):
    """``streams.toml`` contradicts itself; the message names the entry."""


@dataclass(frozen=True, slots=True)
class Table:
    retention: dict[str, RetentionSetting]
    streams: dict[str, Stream]
    buckets: dict[str, Bucket]


def parse(raw: Mapping[str, Any]) -> Table:
    """Check and build the table from the parsed TOML ``raw``; :class:`StreamTableError` says
    which entry is wrong."""
    retention = _retention(raw)
    return Table(retention, _streams(raw, retention), _buckets(raw, retention))


@cache
def table() -> Table:
    return parse(load("streams.toml"))


def retention_settings() -> dict[str, RetentionSetting]:
    return table().retention


def streams() -> dict[str, Stream]:
    """Every stream by key (``ticks``, ``user_events``, ...), in file order."""
    return table().streams


def buckets() -> dict[str, Bucket]:
    """Every KV bucket by key (``holdings``, ``orders``, ...), in file order."""
    return table().buckets


def _retention(raw: Mapping[str, Any]) -> dict[str, RetentionSetting]:
    out = {}
    for key, spec in raw.get("retention", {}).items():
        tp = _TYPES.get(spec.get("type", ""))
        if tp is None:
            raise StreamTableError(f"retention.{key}: type must be int or float")
        out[key] = RetentionSetting(key, spec["env"], tp, tp(spec["default"]), spec.get("doc", ""))
    return out


def _limit(where: str, value: object, retention: Mapping[str, RetentionSetting]) -> int | float | str:
    if isinstance(value, str):
        if value not in retention:
            raise StreamTableError(f"{where}: {value!r} is no [retention] setting")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise StreamTableError(f"{where}: must be a non-negative number or a retention key")
    return value


def _streams(raw: Mapping[str, Any], retention: Mapping[str, RetentionSetting]) -> dict[str, Stream]:
    out: dict[str, Stream] = {}
    owner: dict[str, str] = {}
    for key, spec in raw.get("streams", {}).items():
        if spec.get("class") not in CLASSES:
            raise StreamTableError(f"streams.{key}: class must be one of {CLASSES}")
        try:
            kinds = tuple(Kind(k) for k in spec.get("channels", ()))
        except ValueError as exc:
            raise StreamTableError(f"streams.{key}: {exc}") from None
        subjects = tuple(wildcard(k) for k in kinds) + tuple(spec.get("subjects", ()))
        if not subjects:
            raise StreamTableError(f"streams.{key}: stores no subject (give channels or subjects)")
        for s in subjects:
            if s in owner:
                raise StreamTableError(f"streams.{key}: {s} is already stored by streams.{owner[s]}")
            owner[s] = key
        unknown = set(spec) - {"name", "class", "channels", "subjects", "doc", *LIMITS}
        if unknown:
            raise StreamTableError(f"streams.{key}: unknown field(s) {sorted(unknown)}")
        limits = tuple((lim, _limit(f"streams.{key}.{lim}", spec[lim], retention)) for lim in LIMITS if lim in spec)
        out[key] = Stream(key, spec["name"], spec["class"], kinds, subjects, limits, spec.get("doc", ""))
    if len({s.name for s in out.values()}) != len(out):
        raise StreamTableError("two streams share a name")
    return out


def _buckets(raw: Mapping[str, Any], retention: Mapping[str, RetentionSetting]) -> dict[str, Bucket]:
    out = {}
    for key, spec in raw.get("buckets", {}).items():
        ttl = spec.get("ttl")
        unknown = set(spec) - {"name", "ttl", "doc", "history", "marker_ttl", "republish"}
        if unknown:
            raise StreamTableError(f"buckets.{key}: unknown field(s) {sorted(unknown)}")
        history = spec.get("history", 1)
        if type(history) is not int or not 1 <= history <= 64:
            raise StreamTableError(f"buckets.{key}.history: must be an integer from 1 to 64")
        republish = None
        if "republish" in spec:
            try:
                kind = Kind(spec["republish"])
            except ValueError as exc:
                raise StreamTableError(f"buckets.{key}.republish: {exc}") from None
            pattern = wildcard(kind)
            if not pattern.endswith(".*"):
                raise StreamTableError(f"buckets.{key}.republish: {kind.value} has no one-token subject pattern")
            republish = pattern[:-1] + ">"
        marker = spec.get("marker_ttl")
        out[key] = Bucket(
            key,
            spec["name"],
            None if ttl is None else _limit(f"buckets.{key}.ttl", ttl, retention),
            spec.get("doc", ""),
            history,
            None if marker is None else float(marker),
            republish,
        )
    if len({b.name for b in out.values()}) != len(out):
        raise StreamTableError("two buckets share a name")
    return out


def stream(key: str) -> Stream:
    return streams()[key]


def bucket(key: str) -> Bucket:
    return buckets()[key]


def matches(pattern: str, subject: str) -> bool:
    """Whether NATS subject ``subject`` matches ``pattern`` (``*`` one token, ``>`` the rest)."""
    p, s = pattern.split("."), subject.split(".")
    for i, tok in enumerate(p):
        if tok == ">":
            return len(s) > i
        if i >= len(s) or (tok != "*" and tok != s[i]):
            return False
    return len(s) == len(p)


def stream_for_subject(subject: str) -> Stream:
    """The stream that stores ``subject``; ``KeyError`` if none does."""
    for st in streams().values():
        if any(matches(p, subject) for p in st.subjects):
            return st
    raise KeyError(subject)


@cache
def stream_for_kind(kind: Kind) -> Stream:
    """The stream that stores the channels of ``kind``; ``KeyError`` if none does."""
    for st in streams().values():
        if kind in st.channels:
            return st
    raise KeyError(kind)


def event_feeds() -> tuple[tuple[str, str], ...]:
    """``(subject pattern, stream name)`` of every event stream: what an edge reads live."""
    return tuple((p, st.name) for st in streams().values() if st.cls == "event" for p in st.subjects)
