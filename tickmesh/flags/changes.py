"""Applying one ``flag_change`` (contracts/messages.toml) to a definition: pure, no I/O.

The admin command, the CLI and the Python API all change flags through :func:`apply_change`,
so they accept and refuse exactly the same things with the same codes. The result is a new
:class:`Flag` (or ``None`` for a deletion) that has passed the same validation as a stored one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from tickmesh.contracts.codes import ErrorCode
from tickmesh.contracts.messages import ContractError, schema

from .model import MAX_RULES, Flag, FlagError, Rollout, Rule, Schedule, check_name, check_value, invalid, parse_percent

ACTIONS = (
    "create",
    "set",
    "describe",
    "rollout",
    "add_rule",
    "remove_rule",
    "clear_rules",
    "schedule",
    "kill",
    "revive",
    "delete",
)


def validate_change(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Check a change against its schema; a schema breach is error 102 naming the field."""
    try:
        change = schema("flag_change").validate(raw)
    except ContractError as exc:
        raise FlagError(ErrorCode.INVALID_FIELD, str(exc)) from None
    check_name(change["name"])
    return change


def apply_change(current: Flag | None, change: Mapping[str, Any], *, by: str, now_us: int) -> Flag | None:
    """The definition after ``change`` (already validated), stamped with ``by`` and ``now_us``."""
    action = change["action"]
    name = change["name"]
    if action == "create":
        if current is not None:
            raise invalid(f"flag {name} already exists")
        kind = change.get("type")
        if kind is None:
            raise invalid("create needs a type: boolean, string, number or json")
        default = change.get("value", False if kind == "boolean" else None)
        flag = Flag(
            name=name,
            type=kind,
            default=check_value(kind, default, "default"),
            description=change.get("description", ""),
            updated_by=by,
            updated_at=now_us,
        )
        return flag
    if current is None:
        raise FlagError(ErrorCode.UNKNOWN_FLAG, f"no flag named {name}")
    if action == "delete":
        return None
    flag = _ACTIONS[action](current, change)
    return replace(flag, updated_by=by, updated_at=now_us)


def _needs(change: Mapping[str, Any], key: str) -> Any:
    if key not in change:
        raise invalid(f"{change['action']} needs {key}")
    return change[key]


def _set(flag: Flag, change: Mapping[str, Any]) -> Flag:
    return replace(flag, default=check_value(flag.type, _needs(change, "value"), "default"))


def _describe(flag: Flag, change: Mapping[str, Any]) -> Flag:
    return replace(flag, description=change.get("description", ""))


def _rollout(flag: Flag, change: Mapping[str, Any]) -> Flag:
    points = parse_percent(_needs(change, "percent"))
    if "value" in change:
        value = change["value"]
    elif flag.rollout is not None:
        value = flag.rollout.value
    elif flag.type == "boolean":
        value = not flag.default if flag.default is True else True
    else:
        raise invalid("rollout needs the value it serves")
    return replace(flag, rollout=Rollout(points, check_value(flag.type, value, "rollout value")))


def _add_rule(flag: Flag, change: Mapping[str, Any]) -> Flag:
    if len(flag.rules) >= MAX_RULES:
        raise invalid(f"a flag holds at most {MAX_RULES} rules")
    value = change["value"] if "value" in change else (True if flag.type == "boolean" else None)
    rule = Rule.build(flag.type, {**change, "value": value})
    return replace(flag, rules=flag.rules + (rule,))


def _remove_rule(flag: Flag, change: Mapping[str, Any]) -> Flag:
    index = _needs(change, "index")
    if not 0 <= index < len(flag.rules):
        raise invalid(f"no rule at index {index} (the flag has {len(flag.rules)})")
    return replace(flag, rules=flag.rules[:index] + flag.rules[index + 1 :])


def _clear_rules(flag: Flag, change: Mapping[str, Any]) -> Flag:
    return replace(flag, rules=())


def _schedule(flag: Flag, change: Mapping[str, Any]) -> Flag:
    start, end = change.get("starts_at"), change.get("ends_at")
    if start is None and end is None:
        return replace(flag, schedule=None)
    if start is not None and end is not None and end <= start:
        raise invalid("the schedule must end after it starts")
    return replace(flag, schedule=Schedule(start, end))


def _kill(flag: Flag, change: Mapping[str, Any]) -> Flag:
    return replace(flag, killed=True)


def _revive(flag: Flag, change: Mapping[str, Any]) -> Flag:
    return replace(flag, killed=False)


_ACTIONS = {
    "set": _set,
    "describe": _describe,
    "rollout": _rollout,
    "add_rule": _add_rule,
    "remove_rule": _remove_rule,
    "clear_rules": _clear_rules,
    "schedule": _schedule,
    "kill": _kill,
    "revive": _revive,
}
assert set(_ACTIONS) | {"create", "delete"} == set(ACTIONS)
