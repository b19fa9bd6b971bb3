"""What a feature flag is: its stored definition, validated on the way in and out of ``tm_flags``.

A definition is JSON in the KV bucket under the flag's name. It is checked whenever it is read
(a bad entry written by hand is refused, never half-applied) and whenever it is built from a
change, so that every process evaluates the same, valid definitions. All bounds are here
(:data:`MAX_RULES`, :data:`MAX_VALUE_BYTES`, ...), because a flag travels to every edge and its
values to every client.

Stored form (keys absent when empty)::

    {"name": "ws.msgpack", "type": "boolean", "default": false, "description": "...",
     "rules": [{"users": ["alice"], "roles": ["admin"], "entitlements": ["crypto"], "value": true}],
     "rollout": {"percent": "10", "value": true},
     "schedule": {"starts_at": 1795630850562443, "ends_at": null},
     "killed": false, "updated_by": "alice", "updated_at": 1795630850562443}
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from tickmesh.contracts.channels import USER_ID_RE
from tickmesh.contracts.codes import ErrorCode

NAME_RE = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
TYPES = ("boolean", "string", "number", "json")
MAX_FLAGS = 256
MAX_RULES = 32
MAX_USERS_PER_RULE = 1000
MAX_LABELS_PER_RULE = 16  # roles, entitlements
MAX_VALUE_BYTES = 4096
MAX_STRING_VALUE = 1024
MAX_DESCRIPTION = 500
_LABEL_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class FlagError(Exception):
    """A flag operation that cannot be done; ``code`` is from contracts/codes.toml (640-642, 102)."""

    def __init__(self, code: ErrorCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def invalid(reason: str) -> FlagError:
    return FlagError(ErrorCode.INVALID_FLAG, reason)


def check_name(name: object) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise invalid("flag name must be 1-64 of a-z 0-9 _ . -, starting with a letter")
    return name


def check_value(kind: str, value: Any, what: str = "value") -> Any:
    """``value`` if it is a valid value of flag type ``kind``; raise :class:`FlagError` otherwise."""
    if kind == "boolean":
        if type(value) is not bool:
            raise invalid(f"{what} must be true or false (boolean flag)")
    elif kind == "string":
        if not isinstance(value, str) or len(value) > MAX_STRING_VALUE:
            raise invalid(f"{what} must be a string of at most {MAX_STRING_VALUE} characters (string flag)")
    elif kind == "number":
        if type(value) not in (int, float) or not math.isfinite(value):
            raise invalid(f"{what} must be a finite number (number flag)")
    elif kind == "json":
        if not isinstance(value, (dict, list)):
            raise invalid(f"{what} must be a JSON object or array (json flag)")
    else:
        raise invalid(f"type must be one of {', '.join(TYPES)}")
    try:
        size = len(orjson.dumps(value))
    except TypeError:
        raise invalid(f"{what} is not JSON") from None
    if size > MAX_VALUE_BYTES:
        raise invalid(f"{what} must encode to at most {MAX_VALUE_BYTES} bytes of JSON")
    return value


def parse_percent(raw: object) -> int:
    """A percentage (``"10"``, ``"0.25"``, ``10``, ``"10%"``) as basis points, 0 to 10000."""
    text = str(raw).strip().removesuffix("%") if isinstance(raw, (str, int)) and type(raw) is not bool else None
    try:
        pct = Decimal(text) if text is not None else None
    except InvalidOperation:
        pct = None
    if pct is None or not pct.is_finite() or not 0 <= pct <= 100 or (pct * 100) % 1 != 0:
        raise invalid("percent must be a number from 0 to 100 with at most two decimals")
    return int(pct * 100)


def format_percent(basis_points: int) -> str:
    """Basis points back to the shortest exact percentage string (``1050`` -> ``"10.5"``)."""
    whole, frac = divmod(basis_points, 100)
    return str(whole) if frac == 0 else f"{whole}.{frac:02d}".rstrip("0")


@dataclass(frozen=True, slots=True)
class Subject:
    """Who a flag is evaluated for: the verified identity, never a client's say-so.

    ``user`` is ``None`` for process-wide evaluations (a service's own behaviour): such a
    subject matches no rule and is in no rollout, so it gets the default.
    """

    user: str | None = None
    roles: frozenset[str] = frozenset()
    entitlements: frozenset[str] = frozenset()


def _labels(raw: object, what: str, limit: int, pattern: re.Pattern[str]) -> frozenset[str]:
    if raw is None:
        return frozenset()
    if not isinstance(raw, (list, tuple, frozenset, set)) or len(raw) > limit:
        raise invalid(f"rule {what} must be a list of at most {limit}")
    for item in raw:
        if not isinstance(item, str) or not pattern.fullmatch(item):
            raise invalid(f"rule {what}: {str(item)[:40]!r} is not valid")
    return frozenset(raw)


@dataclass(frozen=True, slots=True)
class Rule:
    """Matches a subject when every criterion it gives matches: the user id is listed, the
    subject holds any of the roles, holds any of the entitlements. A rule gives at least one."""

    value: Any
    users: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    entitlements: frozenset[str] = frozenset()

    def matches(self, subject: Subject) -> bool:
        if self.users and subject.user not in self.users:
            return False
        if self.roles and self.roles.isdisjoint(subject.roles):
            return False
        if self.entitlements and self.entitlements.isdisjoint(subject.entitlements):
            return False
        return True

    @classmethod
    def build(cls, kind: str, raw: Mapping[str, Any]) -> Rule:
        rule = cls(
            value=check_value(kind, raw.get("value"), "rule value"),
            users=_labels(raw.get("users"), "users", MAX_USERS_PER_RULE, USER_ID_RE),
            roles=_labels(raw.get("roles"), "roles", MAX_LABELS_PER_RULE, _LABEL_RE),
            entitlements=_labels(raw.get("entitlements"), "entitlements", MAX_LABELS_PER_RULE, _LABEL_RE),
        )
        if not (rule.users or rule.roles or rule.entitlements):
            raise invalid("a rule needs at least one of users, roles, entitlements")
        return rule

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("users", "roles", "entitlements"):
            items = getattr(self, key)
            if items:
                out[key] = sorted(items)
        out["value"] = self.value
        return out


@dataclass(frozen=True, slots=True)
class Rollout:
    basis_points: int  # 0..10000: users whose bucket is below get `value`
    value: Any


@dataclass(frozen=True, slots=True)
class Schedule:
    """Rules and rollout apply from ``starts_at`` (inclusive) to ``ends_at`` (exclusive), µs."""

    starts_at: int | None = None
    ends_at: int | None = None

    def active(self, now_us: int) -> bool:
        return (self.starts_at is None or now_us >= self.starts_at) and (self.ends_at is None or now_us < self.ends_at)

    def boundaries(self) -> tuple[int, ...]:
        return tuple(t for t in (self.starts_at, self.ends_at) if t is not None)


def _ts(raw: object, what: str) -> int | None:
    if raw is None:
        return None
    if type(raw) is not int or raw < 0:
        raise invalid(f"{what} must be microseconds since the Unix epoch")
    return raw


@dataclass(frozen=True, slots=True)
class Flag:
    name: str
    type: str
    default: Any
    description: str = ""
    rules: tuple[Rule, ...] = ()
    rollout: Rollout | None = None
    schedule: Schedule | None = None
    killed: bool = False
    updated_by: str = ""
    updated_at: int = 0

    @classmethod
    def from_json(cls, name: str, raw: object) -> Flag:
        """Validate a stored definition (``raw`` is the parsed JSON); raise :class:`FlagError`."""
        check_name(name)
        if not isinstance(raw, Mapping):
            raise invalid("a flag definition must be a JSON object")
        if raw.get("name", name) != name:
            raise invalid("the definition names another flag")
        kind = raw.get("type")
        if kind not in TYPES:
            raise invalid(f"type must be one of {', '.join(TYPES)}")
        rules_raw = raw.get("rules") or []
        if not isinstance(rules_raw, list) or len(rules_raw) > MAX_RULES:
            raise invalid(f"rules must be a list of at most {MAX_RULES}")
        rules = tuple(Rule.build(kind, r if isinstance(r, Mapping) else {}) for r in rules_raw)
        rollout = None
        if raw.get("rollout") is not None:
            ro = raw["rollout"]
            if not isinstance(ro, Mapping):
                raise invalid("rollout must be an object")
            rollout = Rollout(parse_percent(ro.get("percent")), check_value(kind, ro.get("value"), "rollout value"))
        schedule = None
        if raw.get("schedule") is not None:
            sc = raw["schedule"]
            if not isinstance(sc, Mapping):
                raise invalid("schedule must be an object")
            schedule = Schedule(_ts(sc.get("starts_at"), "starts_at"), _ts(sc.get("ends_at"), "ends_at"))
            if (
                schedule.starts_at is not None
                and schedule.ends_at is not None
                and schedule.ends_at <= schedule.starts_at
            ):
                raise invalid("the schedule must end after it starts")
            if schedule.starts_at is None and schedule.ends_at is None:
                schedule = None
        description = raw.get("description") or ""
        if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
            raise invalid(f"description must be a string of at most {MAX_DESCRIPTION} characters")
        killed = raw.get("killed", False)
        if type(killed) is not bool:
            raise invalid("killed must be true or false")
        by = raw.get("updated_by") or ""
        at = raw.get("updated_at") or 0
        if not isinstance(by, str) or len(by) > 128 or type(at) is not int:
            raise invalid("updated_by/updated_at are malformed")
        return cls(
            name=name,
            type=kind,
            default=check_value(kind, raw.get("default"), "default"),
            description=description,
            rules=rules,
            rollout=rollout,
            schedule=schedule,
            killed=killed,
            updated_by=by,
            updated_at=at,
        )

    @classmethod
    def decode(cls, name: str, data: bytes) -> Flag:
        try:
            raw = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise invalid("a flag definition must be JSON") from None
        return cls.from_json(name, raw)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "default": self.default}
        if self.description:
            out["description"] = self.description
        if self.rules:
            out["rules"] = [r.to_json() for r in self.rules]
        if self.rollout is not None:
            out["rollout"] = {"percent": format_percent(self.rollout.basis_points), "value": self.rollout.value}
        if self.schedule is not None:
            out["schedule"] = {"starts_at": self.schedule.starts_at, "ends_at": self.schedule.ends_at}
        out["killed"] = self.killed
        out["updated_by"] = self.updated_by
        out["updated_at"] = self.updated_at
        return out

    def encode(self) -> bytes:
        return orjson.dumps(self.to_json())
