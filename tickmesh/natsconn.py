"""The one way services connect to NATS: reconnect forever, log connection changes."""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Awaitable, Callable

import nats
from nats.aio.client import Client

log = logging.getLogger(__name__)


StatusCallback = Callable[[bool], "Awaitable[None] | None"]


async def connect(url: str, *, name: str, first_attempt_timeout: float | None = None,
                  on_status: StatusCallback | None = None) -> Client:
    """Connect to ``url`` (comma-separated servers allowed), retrying the first connection with
    backoff until it succeeds (or ``first_attempt_timeout`` seconds pass), then letting the client
    library reconnect forever (it restores subscriptions). ``on_status(False)`` is called on each
    disconnect and ``on_status(True)`` on each reconnect."""

    async def status(up: bool) -> None:
        if on_status is not None:
            res = on_status(up)
            if inspect.isawaitable(res):
                await res

    async def on_disconnect() -> None:
        log.warning("NATS disconnected", extra={"event": "nats.disconnected"})
        await status(False)

    async def on_reconnect() -> None:
        log.info("NATS reconnected", extra={"event": "nats.reconnected"})
        await status(True)

    async def on_error(exc: Exception) -> None:
        from tickmesh import metrics

        metrics.nats_error(exc)
        log.warning("NATS error: %s", exc, extra={"event": "nats.error"})

    servers = [u.strip() for u in url.split(",") if u.strip()]
    loop = asyncio.get_running_loop()
    deadline = None if first_attempt_timeout is None else loop.time() + first_attempt_timeout
    delay = 0.2
    while True:
        try:
            nc = await nats.connect(
                servers=servers, name=name, max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                connect_timeout=2, disconnected_cb=on_disconnect, reconnected_cb=on_reconnect,
                error_cb=on_error,
            )
            log.info("connected to NATS at %s", nc.connected_url.netloc if nc.connected_url else url,
                     extra={"event": "nats.connected"})
            return nc
        except Exception as exc:
            if deadline is not None and loop.time() + delay > deadline:
                raise
            log.warning("NATS not reachable at %s (%s); retrying in %.1fs", url, exc, delay,
                        extra={"event": "nats.unreachable"})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
