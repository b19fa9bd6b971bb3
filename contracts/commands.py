"""Client commands (``commands.toml``) and their NATS request/reply envelope.

The edge forwards an authorised ``cmd`` as a request on :func:`command_subject` carrying the
*verified* user id and roles; a service answers with :func:`reply_ok` or :func:`reply_err`. The
envelope is the contract between the edge and every service, so both sides build and parse it
here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson

from ._data import load
from .channels import SUBJECT_ROOT, USER_ID_RE
from .messages import ContractError, schema


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    roles: frozenset[str]
    request: str
    timeout: float
    service: str
    doc: str


@cache
def commands() -> dict[str, Command]:
    return {
        name: Command(
            name,
            frozenset(spec["roles"]),
            spec["request"],
            float(spec["timeout"]),
            spec["service"],
            spec.get("doc", ""),
        )
        for name, spec in load("commands.toml")["commands"].items()
    }


def command_subject(name: str) -> str:
    """``tm.cmd.<name>`` for a command listed in ``commands.toml`` (only those reach NATS)."""
    if name not in commands():
        raise KeyError(name)
    return f"{SUBJECT_ROOT}.cmd.{name}"


COMMAND_WILDCARD = f"{SUBJECT_ROOT}.cmd.>"  # every command subject (the edge sends them all)


def service_subjects(service: str) -> list[str]:
    """Every command subject a service answers."""
    return [command_subject(c.name) for c in commands().values() if c.service == service]


@dataclass(frozen=True, slots=True)
class CommandRequest:
    name: str
    user: str
    roles: tuple[str, ...]
    cmd_id: str
    data: dict[str, Any]


def encode_request(
    name: str, *, user: str, roles: tuple[str, ...] | list[str], cmd_id: str, data: dict[str, Any]
) -> bytes:
    """The request body the edge sends; ``data`` must already satisfy the command's schema."""
    return orjson.dumps({"name": name, "user": user, "roles": list(roles), "cmd_id": cmd_id, "data": data})


def decode_request(payload: bytes) -> CommandRequest:
    """Parse and check a command request; ``data`` is validated against the command's schema."""
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise ContractError("command", None, "not JSON") from None
    if not isinstance(obj, dict):
        raise ContractError("command", None, "must be an object")
    name = obj.get("name")
    cmd = commands().get(name) if isinstance(name, str) else None
    if cmd is None:
        raise ContractError("command", "name", "unknown command")
    user = obj.get("user")
    if not isinstance(user, str) or not USER_ID_RE.fullmatch(user):
        raise ContractError("command", "user", "not a valid user id")
    roles = obj.get("roles")
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise ContractError("command", "roles", "must be a list of strings")
    cmd_id = obj.get("cmd_id")
    if not isinstance(cmd_id, str) or not 0 < len(cmd_id) <= 128:
        raise ContractError("command", "cmd_id", "must be a string of 1-128 characters")
    data = schema(cmd.request).validate(obj.get("data") or {})
    return CommandRequest(cmd.name, user, tuple(roles), cmd_id, data)


def reply_ok(data: dict[str, Any] | None = None) -> bytes:
    return orjson.dumps({"ok": True, "data": data or {}})


def reply_err(code: int, reason: str, data: dict[str, Any] | None = None) -> bytes:
    """An error reply; ``data`` (optional) carries what the client needs to act on the error,
    such as the current watch-list with 610 ``edit_conflict``."""
    body: dict[str, Any] = {"ok": False, "code": int(code), "reason": reason}
    if data:
        body["data"] = data
    return orjson.dumps(body)


@dataclass(frozen=True, slots=True)
class CommandReply:
    ok: bool
    data: dict[str, Any]
    code: int = 0
    reason: str = ""


def decode_reply(payload: bytes) -> CommandReply:
    obj = orjson.loads(payload)
    if obj.get("ok") is True:
        return CommandReply(True, obj.get("data") or {})
    data = obj.get("data")
    return CommandReply(
        False, data if isinstance(data, dict) else {}, int(obj.get("code", 500)), str(obj.get("reason", ""))
    )
