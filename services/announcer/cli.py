"""``tickmesh announce``: send ``announcement.publish`` over NATS as user ``cli`` (role admin),
exactly as the edge would forward it, and print the announcer's reply."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from tickmesh.contracts import commands as cmds
from tickmesh.contracts import messages


def parse_time(text: str) -> int:
    """An ISO 8601 time (``2026-11-25T18:00``, ``...Z``, ``...+01:00``; naive means UTC) as
    microseconds since the epoch."""
    dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1_000_000)


async def announce(nats_url: str, data: dict[str, Any], *, timeout: float = 5.0) -> cmds.CommandReply:
    from tickmesh.ops.natsauth import connect_tool

    body = cmds.encode_request(
        "announcement.publish",
        user="cli",
        roles=["admin"],
        cmd_id=uuid.uuid4().hex,
        data=messages.schema("announcement").validate(data),
    )
    nc = await connect_tool(nats_url, timeout=timeout)
    try:
        msg = await nc.request(cmds.command_subject("announcement.publish"), body, timeout=timeout)
        return cmds.decode_reply(msg.data)
    finally:
        await nc.close()


def run(severity: str, text: str, starts_at: str | None, ends_at: str | None) -> int:
    """The body of ``tickmesh announce``; returns the exit code (0 sent, 1 refused, 2 failed)."""
    data: dict[str, Any] = {"severity": severity, "text": text}
    try:
        if starts_at:
            data["starts_at"] = parse_time(starts_at)
        if ends_at:
            data["ends_at"] = parse_time(ends_at)
        url = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
        reply = asyncio.run(announce(url, data))
    except (ValueError, messages.ContractError) as exc:
        print(f"tickmesh announce: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # NATS unreachable, no announcer running
        print(f"tickmesh announce: could not reach the announcer: {type(exc).__name__} {exc}", file=sys.stderr)
        return 2
    if not reply.ok:
        print(f"tickmesh announce: refused ({reply.code}): {reply.reason}", file=sys.stderr)
        return 1
    print(orjson.dumps(reply.data).decode())
    return 0
