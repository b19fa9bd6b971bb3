"""WebSocket adapter: pumps frames between a Quart websocket and the session core.

Two loops per connection: the reader feeds client frames to :class:`Session` and carries out the
actions it returns; the writer drains the connection's :class:`Outbox` whenever it becomes
non-empty and sends everything pending as one WebSocket message, so frames that arrive while a
send is in progress are batched naturally. A send waits for the socket's write buffer, so a slow
client slows only its own writer while its outbox conflates or overflows.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from typing import TYPE_CHECKING, Any

from tickmesh.contracts.codes import CloseCode

from .frames import batch
from .outbox import Outbox
from .session import Close, Session, Subscribe, Unsubscribe

if TYPE_CHECKING:
    from .app import EdgeState

log = logging.getLogger(__name__)

_ids = itertools.count(1)
_prefix = f"{os.getpid():x}"


def new_conn_id() -> str:
    return f"{_prefix}-{next(_ids):x}"


class WebSocketConnection:
    def __init__(self, ws: Any, state: EdgeState) -> None:
        self.ws = ws
        self.state = state
        loop = asyncio.get_running_loop()
        self._clock = loop.time
        settings = state.settings
        self.session = Session(
            conn_id=new_conn_id(),
            now=self._clock(),
            max_subscriptions=settings.max_subscriptions,
            max_frame_bytes=settings.max_frame_bytes,
            channel_exists=state.channel_exists,
        )
        self._wake = asyncio.Event()
        self.outbox = Outbox(max_frames=settings.outbox_max_frames, max_bytes=settings.outbox_max_bytes,
                             on_ready=self._wake.set, on_overflow=self._on_overflow)
        self._close: Close | None = None
        self._subscribed: dict[str, str] = {}  # channel name -> subject, as registered in the hub

    def _on_overflow(self) -> None:
        self.state.slow_consumers += 1
        self._close = Close(int(CloseCode.SLOW_CONSUMER), "slow consumer: resume from your last position")
        self._wake.set()

    async def run(self) -> None:
        await self.ws.accept()
        reader = asyncio.ensure_future(self._read())
        writer = asyncio.ensure_future(self._write())
        try:
            await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, writer):
                task.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)
            await self._release()

    async def _read(self) -> None:
        session = self.session
        while self._close is None:
            data = await self.ws.receive()
            session.receive_frame(data, self._clock())
            await self._apply(session.take())

    async def _apply(self, outputs: list) -> None:
        for out in outputs:
            if isinstance(out, bytes):
                if not self.outbox.push(out):
                    return
            elif isinstance(out, Subscribe):
                self._subscribed[out.name] = out.subject
                await self.state.attach(out.subject, out.name, self.outbox, conflate=out.conflate,
                                        reply=out.reply)
            elif isinstance(out, Unsubscribe):
                if self._subscribed.pop(out.name, None) is not None:
                    await self.state.detach(out.subject, out.name, self.outbox)
                if out.reply is not None:
                    self.outbox.push(out.reply)
            elif isinstance(out, Close):
                self._close = out
                self._wake.set()

    async def _write(self) -> None:
        ws, outbox, wake = self.ws, self.outbox, self._wake
        while True:
            await wake.wait()
            wake.clear()
            frames = outbox.drain()
            if frames and (self._close is None or self._close.code != CloseCode.SLOW_CONSUMER):
                await ws.send(batch(frames).decode())
            if self._close is not None:
                await ws.close(self._close.code, self._close.reason)
                return

    async def _release(self) -> None:
        subscribed, self._subscribed = self._subscribed, {}
        for name, subject in subscribed.items():
            await self.state.detach(subject, name, self.outbox)
