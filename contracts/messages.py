"""Message schemas from ``messages.toml``: validation and exact encoding.

Every message a service publishes goes through :func:`encode`, which checks it against the
schema and serialises it with orjson. Decimal fields travel as strings so that prices stay exact
from the provider to the browser: a binary float never appears on the wire.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

import orjson

from ._data import load
from .channels import SYMBOL_RE, USER_ID_RE, Kind, channel_for_subject

_PRIMITIVES = frozenset(
    {"symbol", "decimal", "ts_us", "string", "int", "user_id", "enum", "bool", "number", "json", "request_id"}
)
_MAP_KEY_RE = re.compile(r"[a-z][a-z0-9_.-]{0,63}")

# NATS header carrying a message's position in its channel: strictly increasing per channel.
# For state channels (prices, portfolio) it is a version, not dense; for event channels it is
# the dense stream sequence.
SEQ_HEADER = "Tm-Seq"

DECIMAL_RE = re.compile(r"-?(0|[1-9][0-9]{0,19})(\.[0-9]{1,18})?")
# 2000-01-01 .. 2200-01-01 in microseconds: a timestamp outside is a unit mistake, not a time.
_TS_MIN, _TS_MAX = 946_684_800_000_000, 7_258_118_400_000_000


class ContractError(ValueError):
    """A message that does not satisfy its schema. ``field`` names the offending field."""

    def __init__(self, message: str, field: str | None, reason: str) -> None:
        super().__init__(f"{message}.{field}: {reason}" if field else f"{message}: {reason}")
        self.message = message
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: str
    required: bool
    doc: str
    positive: bool = False
    max: int | None = None
    values: tuple[str, ...] = ()
    items: str | None = None
    schema_of: str | None = None  # frames: the value follows the channel's / command's schema
    codes: str | None = None  # frames: the value is a code of this codes.toml table


@dataclass(frozen=True, slots=True)
class Schema:
    name: str
    doc: str
    fields: tuple[Field, ...]
    subject: str | None = None  # the subject it is published on, as documented (`tm.tick.<symbol-token>`)
    id_field: str | None = None  # the field naming an event (event channels)

    def field(self, name: str) -> Field | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None

    def validate(self, obj: Any) -> dict[str, Any]:
        """Return ``obj`` normalised (``Decimal`` to string) if valid; raise :class:`ContractError`."""
        if not isinstance(obj, Mapping):
            raise ContractError(self.name, None, "must be an object")
        known = {f.name for f in self.fields}
        extra = [k for k in obj if k not in known]
        if extra:
            raise ContractError(self.name, str(extra[0])[:40], "unknown field")
        out: dict[str, Any] = {}
        for f in self.fields:
            if f.name not in obj or obj[f.name] is None:
                if f.required:
                    raise ContractError(self.name, f.name, "required")
                continue
            out[f.name] = _check(self.name, f, obj[f.name])
        return out


def _check(message: str, f: Field, value: Any) -> Any:
    def fail(reason: str) -> ContractError:
        return ContractError(message, f.name, reason)

    if f.type == "decimal":
        if isinstance(value, Decimal):
            if not value.is_finite():
                raise fail("must be finite")
            value = format(value, "f")
        if not isinstance(value, str) or not DECIMAL_RE.fullmatch(value):
            raise fail('must be a decimal string such as "187.20" (no exponent, no float)')
        if f.positive and Decimal(value) <= 0:
            raise fail("must be positive")
        return value
    if f.type == "symbol":
        if not isinstance(value, str) or not SYMBOL_RE.fullmatch(value):
            raise fail("not a valid symbol")
        return value
    if f.type == "ts_us":
        if type(value) is not int or not _TS_MIN <= value <= _TS_MAX:
            raise fail("must be an integer count of microseconds since the Unix epoch")
        return value
    if f.type == "int":
        if type(value) is not int:
            raise fail("must be an integer")
        return value
    if f.type == "user_id":
        if not isinstance(value, str) or not USER_ID_RE.fullmatch(value):
            raise fail("not a valid user id")
        return value
    if f.type == "enum":
        if value not in f.values:
            raise fail("must be one of " + ", ".join(f.values))
        return value
    if f.type == "bool":
        if type(value) is not bool:
            raise fail("must be true or false")
        return value
    if f.type == "list":
        if not isinstance(value, (list, tuple)):
            raise fail("must be a list")
        if f.max is not None and len(value) > f.max:
            raise fail(f"must have at most {f.max} items")
        assert f.items is not None
        if f.items in _PRIMITIVES:
            item = Field(name=f.name, type=f.items, required=True, doc="")
            return [_check(message, item, v) for v in value]
        sub = schema(f.items)
        out = []
        for i, v in enumerate(value):
            try:
                out.append(sub.validate(v))
            except ContractError as exc:
                raise fail(f"item {i}: {exc.field or ''} {exc.reason}".strip()) from None
        return out
    if f.type == "number":
        if type(value) not in (int, float) or value != value or value in (float("inf"), float("-inf")):
            raise fail("must be a finite number")
        return value
    if f.type == "map":
        # An object whose keys follow the flag-name grammar and whose values follow `items`.
        if not isinstance(value, Mapping):
            raise fail("must be an object")
        if f.max is not None and len(value) > f.max:
            raise fail(f"must have at most {f.max} entries")
        assert f.items is not None
        sub = schema(f.items)
        out_map: dict[str, Any] = {}
        for key, v in value.items():
            if not isinstance(key, str) or not _MAP_KEY_RE.fullmatch(key):
                raise fail(f"key {str(key)[:40]!r} must be 1-64 of a-z 0-9 _ . - starting with a letter")
            try:
                out_map[key] = sub.validate(v)
            except ContractError as exc:
                raise fail(f"{key}: {exc.field or ''} {exc.reason}".strip()) from None
        return out_map
    if f.type == "string":
        if not isinstance(value, str) or (f.max is not None and len(value) > f.max):
            raise fail(f"must be a string of at most {f.max} characters")
        return value
    if f.type == "request_id":
        if (type(value) is int and -(2**53) < value < 2**53) or (isinstance(value, str) and len(value) <= 64):
            return value
        raise fail("must be an integer (|n| < 2^53) or a string of at most 64 characters")
    if f.type == "json":
        # Free-form client state (presence data): any JSON value, bounded by its encoded size.
        try:
            size = len(orjson.dumps(value))
        except TypeError:
            raise fail("must be a JSON value") from None
        if f.max is not None and size > f.max:
            raise fail(f"must encode to at most {f.max} bytes of JSON (got {size})")
        return value
    if f.type in load("messages.toml"):  # a nested object of another schema
        try:
            return schema(f.type).validate(value)
        except ContractError as exc:
            raise fail(f"{exc.field or ''} {exc.reason}".strip()) from None
    raise fail(f"schema has unknown type {f.type!r}")


@cache
def schema(name: str) -> Schema:
    return build_schema(name, load("messages.toml")[name])


def build_schema(name: str, raw: Mapping[str, Any]) -> Schema:
    """The :class:`Schema` of one parsed table in the format of ``messages.toml`` (also used for
    the frames of ``frames.toml``)."""
    fields = tuple(
        Field(
            name=fname,
            type=spec["type"],
            required=bool(spec.get("required", False)),
            doc=spec.get("doc", ""),
            positive=bool(spec.get("positive", False)),
            max=spec.get("max"),
            values=tuple(spec.get("values", ())),
            items=spec.get("items"),
            schema_of=spec.get("schema_of"),
            codes=spec.get("codes"),
        )
        for fname, spec in raw.get("fields", {}).items()
    )
    return Schema(
        name=name, doc=raw.get("doc", ""), fields=fields, subject=raw.get("subject"), id_field=raw.get("id_field")
    )


def schema_names() -> list[str]:
    return list(load("messages.toml"))


@cache
def channel_schemas() -> dict[Kind, str]:
    """Channel kind -> the schema of what it carries: each schema's ``channel``, else derived
    from its ``subject`` (never listed by hand)."""
    out: dict[Kind, str] = {}
    for name in schema_names():
        channel = load("messages.toml")[name].get("channel")
        subject = schema(name).subject
        if channel:
            out[Kind(channel)] = name
        elif subject:
            sample = subject.replace("<symbol-token>", "X").replace("<user-token>", "u")
            try:
                out[channel_for_subject(sample).kind] = name
            except ValueError:
                continue  # a control subject (tm.ctl.revoke), not a channel's
    return out


def encode(name: str, obj: Mapping[str, Any]) -> bytes:
    """Validate ``obj`` against schema ``name`` and return its JSON bytes."""
    return orjson.dumps(schema(name).validate(obj))


def decode(name: str, data: bytes | str) -> dict[str, Any]:
    """Parse JSON ``data`` and validate it against schema ``name``."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ContractError(name, None, f"not JSON ({exc})") from None
    return schema(name).validate(obj)
