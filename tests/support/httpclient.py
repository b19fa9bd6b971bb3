"""Real HTTP clients for the fallback transports: tickets, an SSE reader, polls, commands."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson

from .timing import t


async def ticket(http: str, token: str) -> str:
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{http}/ticket", headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.status == 200, await resp.text()
            return (await resp.json())["ticket"]


class SSE:
    """Reads ``text/event-stream`` events from a real HTTP response."""

    def __init__(self, session: aiohttp.ClientSession, resp: aiohttp.ClientResponse) -> None:
        self.session = session
        self.resp = resp
        self.last_id: str | None = None

    @classmethod
    async def open(cls, http: str, ticket_: str, channels: list[str], last_event_id: str | None = None) -> SSE:
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_read=None))
        params = [("ticket", ticket_)] + [("ch", ch) for ch in channels]
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        resp = await session.get(f"{http}/sse", params=params, headers=headers)
        return cls(session, resp)

    async def event(self, timeout: float = 10) -> dict[str, Any]:
        """The next event as ``{"event", "id", "data"}`` (comments are skipped)."""
        fields: dict[str, Any] = {}
        while True:
            line = await asyncio.wait_for(self.resp.content.readline(), t(timeout))
            if not line:
                raise EOFError("stream ended")
            line = line.rstrip(b"\r\n")
            if not line:
                if "data" in fields or "event" in fields:
                    if "id" in fields:
                        self.last_id = fields["id"]
                    if "data" in fields:
                        fields["data"] = orjson.loads(fields["data"])
                    return fields
                continue
            if line.startswith(b":"):
                continue
            name, _, value = line.decode().partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value

    async def messages(self, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        out = []
        while len(out) < count:
            ev = await self.event(timeout)
            if ev.get("event") == "msg":
                out.append(ev["data"])
        return out

    async def close(self) -> None:
        self.resp.close()
        await self.session.close()


async def poll(
    http: str, ticket_: str, channels: list[str], cursor: str | None = None, history: list[str] = ()
) -> tuple[int, dict]:
    params = [("ticket", ticket_)] + [("ch", ch) for ch in channels] + [("history", h) for h in history]
    if cursor:
        params.append(("cursor", cursor))
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{http}/poll", params=params) as resp:
            return resp.status, await resp.json()


async def command(http: str, body: dict, *, token: str | None = None, raw: bytes | None = None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{http}/cmd", data=raw if raw is not None else orjson.dumps(body), headers=headers) as resp:
            return resp.status, await resp.json()
