"""``tickmesh flags``: list and change feature flags in ``tm_flags`` (``NATS_URL``).

Every change goes through :class:`~tickmesh.flags.store.FlagStore`, the same path as the admin
command, and is recorded on the audit stream as made by ``--as`` (default ``$TICKMESH_OPERATOR``,
else the login name) via ``cli``. Exit codes: 0 done, 1 refused (the reason is printed with its
code), 2 bad usage or NATS unreachable.

::

    tickmesh flags list
    tickmesh flags set ws.msgpack false --type boolean     # create (or set the default)
    tickmesh flags rollout ws.msgpack 10%
    tickmesh flags rules ws.msgpack --add --role admin     # serve true to admins
    tickmesh flags kill ws.msgpack                         # everyone gets the default, now
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import math
import os
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from tickmesh.contracts.codes import ErrorCode
from tickmesh.services.announcer.cli import parse_time  # the same ISO 8601 rules as `tickmesh announce`

from .evaluate import evaluate
from .model import Flag, FlagError, Subject, format_percent
from .store import FlagStore, now_us

_TRUE, _FALSE = {"true", "on", "yes", "1"}, {"false", "off", "no", "0"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--as", dest="operator", help="who is making the change (audit); default $TICKMESH_OPERATOR or login"
    )
    sub = p.add_subparsers(dest="action", required=True)
    ls = sub.add_parser("list", help="every flag: type, default, rules, rollout, schedule, state")
    ls.add_argument("--json", action="store_true", help="print the definitions as JSON lines")
    sub.add_parser("show", help="one flag's definition as JSON").add_argument("name")
    s = sub.add_parser("set", help="set a flag's default value (creates the flag if needed)")
    s.add_argument("name")
    s.add_argument("value", help="true/false, a number, a string, or JSON for json flags")
    s.add_argument("--type", choices=["boolean", "string", "number", "json"], help="type when creating (else inferred)")
    s.add_argument("--description", help="what the flag gates (when creating)")
    r = sub.add_parser("rollout", help="serve a value to a percentage of users (stable per user)")
    r.add_argument("name")
    r.add_argument("percent", help="e.g. 10%%, 0.5, 100")
    r.add_argument("--value", help="the value served in the rollout (boolean flags: the opposite of the default)")
    ru = sub.add_parser("rules", help="list a flag's rules, or add/remove/clear them")
    ru.add_argument("name")
    group = ru.add_mutually_exclusive_group()
    group.add_argument("--add", action="store_true", help="add a rule from --user/--role/--entitlement and --value")
    group.add_argument("--remove", type=int, metavar="INDEX", help="remove the rule at INDEX")
    group.add_argument("--clear", action="store_true", help="remove every rule")
    ru.add_argument("--user", action="append", default=[], help="user id the rule matches; repeatable")
    ru.add_argument("--role", action="append", default=[], help="role the rule matches; repeatable")
    ru.add_argument("--entitlement", action="append", default=[], help="entitlement the rule matches; repeatable")
    ru.add_argument("--value", help="the value the rule serves (boolean flags: true)")
    sc = sub.add_parser("schedule", help="apply rules and rollout only between --start and --end (neither: clear)")
    sc.add_argument("name")
    sc.add_argument("--start", help="ISO 8601 time (no zone means UTC)")
    sc.add_argument("--end", help="ISO 8601 time (no zone means UTC)")
    for name, text in (
        ("kill", "kill switch: everyone gets the default at once"),
        ("revive", "undo kill"),
        ("delete", "delete the flag"),
    ):
        sub.add_parser(name, help=text).add_argument("name")
    d = sub.add_parser("describe", help="set the description")
    d.add_argument("name")
    d.add_argument("text")
    a = sub.add_parser("audit", help="recent changes: who, when, what")
    a.add_argument("name", nargs="?")
    a.add_argument("--limit", type=int, default=20)
    e = sub.add_parser("eval", help="what a user would get")
    e.add_argument("name")
    e.add_argument("--user", required=True)
    e.add_argument("--role", action="append", default=[])
    e.add_argument("--entitlement", action="append", default=[])


def parse_value(kind: str | None, text: str) -> tuple[str, Any]:
    """``(type, value)`` from command-line text; ``kind`` None infers the type."""
    low = text.strip().lower()
    if kind == "boolean" or (kind is None and low in ("true", "false")):
        if low in _TRUE:
            return "boolean", True
        if low in _FALSE:
            return "boolean", False
        raise ValueError(f"{text!r} is not a boolean (true/false, on/off)")
    if kind == "number" or kind is None:
        for convert in (int, float):
            try:
                number = convert(text)
            except ValueError:
                continue
            if math.isfinite(number):
                return "number", number
        if kind == "number":
            raise ValueError(f"{text!r} is not a number")
    if kind == "json" or (kind is None and text.lstrip()[:1] in ("{", "[")):
        try:
            return "json", orjson.loads(text)
        except orjson.JSONDecodeError:
            raise ValueError(f"{text!r} is not JSON") from None
    return "string", text


def _when(us: int | None) -> str:
    return "-" if us is None else datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _short(value: Any) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= 24 else text[:21] + "..."


def describe(flag: Flag) -> str:
    rollout = (
        "-" if flag.rollout is None else f"{format_percent(flag.rollout.basis_points)}% -> {_short(flag.rollout.value)}"
    )
    schedule = "-" if flag.schedule is None else f"{_when(flag.schedule.starts_at)} .. {_when(flag.schedule.ends_at)}"
    state = "KILLED" if flag.killed else "live"
    return (
        f"{flag.name:<28} {flag.type:<8} {_short(flag.default):<24} {len(flag.rules):>5}  {rollout:<22} "
        f"{schedule:<40} {state:<6} {flag.updated_by}"
    )


def _rule_text(i: int, rule: Any) -> str:
    parts = [
        f"{k}={','.join(sorted(getattr(rule, k)))}" for k in ("users", "roles", "entitlements") if getattr(rule, k)
    ]
    return f"  [{i}] {' '.join(parts)} -> {_short(rule.value)}"


async def _run(args: argparse.Namespace, url: str, by: str) -> int:
    from tickmesh.ops.natsauth import connect_tool

    nc = await connect_tool(url)
    try:
        store = await FlagStore.open(nc)
        return await _dispatch(store, args, by)
    finally:
        await nc.close()


async def _change(store: FlagStore, change: dict[str, Any], by: str) -> int:
    flag, revision = await store.change(change, by=by, via="cli")
    print(f"{change['name']}: {change['action']} stored at revision {revision}")
    if flag is not None:
        print(describe(flag))
    return 0


async def _dispatch(store: FlagStore, args: argparse.Namespace, by: str) -> int:
    action = args.action
    if action == "list":
        flags, revision = await store.list()
        if args.json:
            for flag in flags:
                print(orjson.dumps(flag.to_json()).decode())
            return 0
        print(
            f"{'flag':<28} {'type':<8} {'default':<24} {'rules':>5}  {'rollout':<22} {'schedule':<40} {'state':<6} by"
        )
        for flag in flags:
            print(describe(flag))
        print(f"({len(flags)} flags, revision {revision})")
        return 0
    if action == "audit":
        for rec in await store.audit(args.name, args.limit):
            print(
                f"{_when(rec['ts'])}  rev {rec['revision']:<6} {rec['flag']:<28} {rec['action']:<12} "
                f"by {rec['by']} via {rec['via']}"
            )
        return 0
    current, revision = await store.get(args.name)
    if action == "show":
        if current is None:
            raise FlagError(ErrorCode.UNKNOWN_FLAG, f"no flag named {args.name}")
        print(orjson.dumps({**current.to_json(), "revision": revision}, option=orjson.OPT_INDENT_2).decode())
        return 0
    if action == "eval":
        if current is None:
            raise FlagError(ErrorCode.UNKNOWN_FLAG, f"no flag named {args.name}")
        result = evaluate(current, Subject(args.user, frozenset(args.role), frozenset(args.entitlement)), now_us())
        print(orjson.dumps(result.to_json()).decode())
        return 0
    kind = current.type if current is not None else None
    if action == "set":
        kind, value = parse_value(kind or args.type, args.value)
        if current is None:
            change = {"name": args.name, "action": "create", "type": kind, "value": value}
            if args.description:
                change["description"] = args.description
            return await _change(store, change, by)
        return await _change(store, {"name": args.name, "action": "set", "value": value, "revision": revision}, by)
    if action == "rollout":
        change = {"name": args.name, "action": "rollout", "percent": args.percent.strip().removesuffix("%")}
        if args.value is not None:
            change["value"] = parse_value(kind, args.value)[1]
        return await _change(store, change, by)
    if action == "rules":
        if args.add:
            change = {
                "name": args.name,
                "action": "add_rule",
                "users": args.user,
                "roles": args.role,
                "entitlements": args.entitlement,
            }
            if args.value is not None:
                change["value"] = parse_value(kind, args.value)[1]
            return await _change(store, change, by)
        if args.remove is not None:
            return await _change(store, {"name": args.name, "action": "remove_rule", "index": args.remove}, by)
        if args.clear:
            return await _change(store, {"name": args.name, "action": "clear_rules"}, by)
        if current is None:
            raise FlagError(ErrorCode.UNKNOWN_FLAG, f"no flag named {args.name}")
        print(f"{args.name}: {len(current.rules)} rules (first match wins)")
        for i, rule in enumerate(current.rules):
            print(_rule_text(i, rule))
        return 0
    if action == "schedule":
        change = {"name": args.name, "action": "schedule"}
        if args.start:
            change["starts_at"] = parse_time(args.start)
        if args.end:
            change["ends_at"] = parse_time(args.end)
        return await _change(store, change, by)
    if action == "describe":
        return await _change(store, {"name": args.name, "action": "describe", "description": args.text}, by)
    return await _change(store, {"name": args.name, "action": action}, by)  # kill, revive, delete


def operator(args: argparse.Namespace) -> str:
    if args.operator:
        return args.operator
    env = os.environ.get("TICKMESH_OPERATOR")
    if env:
        return env
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no login name (a container): still say it came from the CLI
        return "cli"


def run(args: argparse.Namespace) -> int:
    url = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
    try:
        return asyncio.run(_run(args, url, operator(args)))
    except FlagError as exc:
        print(f"tickmesh flags: refused ({int(exc.code)}): {exc.reason}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"tickmesh flags: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # NATS unreachable
        print(f"tickmesh flags: could not reach NATS at {url}: {type(exc).__name__} {exc}", file=sys.stderr)
        return 2
