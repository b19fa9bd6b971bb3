"""The naive broadcaster that the issue measured, shared by the Quart and Starlette peers.

One NATS subscription per subject (shared by every connection), an unbounded ``asyncio.Queue``
per connection, and one WebSocket send per message: what a first version of an edge looks
like. It speaks the subset of the tickmesh protocol the bench uses (``sub`` -> ``ok``, then
``msg`` frames, the frame built once per message) and has no auth. It is deliberately simple:
it exists to be measured, not to be used.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

import nats
import orjson

from tickmesh.contracts.channels import parse_channel, subject_for


class NaiveHub:
    def __init__(self) -> None:
        self.nc = None
        self._queues: dict[str, set[asyncio.Queue]] = {}
        self._subs: dict[str, object] = {}

    async def start(self) -> None:
        self.nc = await nats.connect(
            servers=[os.environ.get("NATS_URL", "nats://127.0.0.1:4222")],
            name="bench-naive-peer",
            max_reconnect_attempts=-1,
        )

    async def stop(self) -> None:
        if self.nc is not None:
            await self.nc.close()

    async def add(self, channel: str, queue: asyncio.Queue) -> None:
        subject = subject_for(parse_channel(channel))
        self._queues.setdefault(subject, set()).add((channel, queue))
        await subscribe_once(self.nc, self._subs, subject, self._on_msg)

    def remove(self, queue: asyncio.Queue) -> None:
        for members in self._queues.values():
            for item in [m for m in members if m[1] is queue]:
                members.discard(item)

    async def _on_msg(self, msg) -> None:
        members = self._queues.get(msg.subject, ())
        frames: dict[str, str] = {}
        for channel, queue in members:
            frame = frames.get(channel)
            if frame is None:
                frame = frames[channel] = '{"op":"msg","ch":"%s","data":%s}' % (channel, msg.data.decode())
            queue.put_nowait(frame)


async def serve_connection(
    hub: NaiveHub, receive: Callable[[], Awaitable[str]], send: Callable[[str], Awaitable[None]]
) -> None:
    """Pump one WebSocket: a reader handling ``sub``, a writer sending one message per frame."""
    queue: asyncio.Queue = asyncio.Queue()

    async def writer() -> None:
        while True:
            await send(await queue.get())

    task = asyncio.ensure_future(writer())
    try:
        while True:
            frame = orjson.loads(await receive())
            if frame.get("op") == "sub":
                await hub.add(frame["ch"], queue)
                queue.put_nowait(orjson.dumps({"op": "ok", "id": frame.get("id")}).decode())
    finally:
        task.cancel()
        hub.remove(queue)


async def subscribe_once(nc, subs: dict, subject: str, cb) -> None:
    """Subscribe ``subject`` once per process, however many connections ask at the same time;
    returns when the server has the subscription."""
    pending = subs.get(subject)
    if pending is None:

        async def go() -> None:
            await nc.subscribe(subject, cb=cb)
            await nc.flush()

        pending = subs[subject] = asyncio.ensure_future(go())
    await pending


def port() -> int:
    return int(os.environ.get("PEER_PORT", "8100"))
