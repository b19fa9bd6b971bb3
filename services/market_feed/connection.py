"""The reconnecting WebSocket loop shared by every real provider adapter.

An adapter supplies a :class:`Session`: the sans-I/O protocol state of one connection (the
frames that subscribe, what each received frame means, when the provider must next be heard
from). This module owns the I/O around it, identically for every provider:

* each new connection starts a fresh session and sends all of its opening frames (every
  subscription, again, after each reconnect), paced by ``send_interval`` so that a long
  subscription list stays under the provider's inbound message limit;
* a provider that stays quiet past the session's ``deadline`` is treated as dead: the
  connection is dropped and counted as a silence;
* connection attempts follow :class:`tickmesh.backoff.Backoff` (jittered exponential after failures,
  never faster than the provider's connection-rate floor); a connection that proved healthy
  (an acknowledgement or data arrived) resets the backoff.

WebSocket pings from the server are answered by the websockets library itself.

Metrics (``tickmesh.metrics``, label ``provider`` = the adapter's name):
``tickmesh_provider_connected`` is 1 from the moment a connection opens until it ends; every
connection after the first counts as a reconnect; every frame received notes the time of the
provider's last message (one dict store).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from tickmesh import metrics
from tickmesh.backoff import Backoff

from .normalise import Tick
from .provider import Emit, ProviderStats

log = logging.getLogger(__name__)

# Largest frame accepted from a provider: a ticker snapshot of many products fits easily.
MAX_FRAME_BYTES = 4 * 1024 * 1024


class Session(Protocol):
    deadline: float  # steady-clock time by which the provider must be heard from
    healthy: bool  # True once the connection has proved it works
    reconnect: str | None  # set (to a reason) when the provider asked us to reconnect

    def opening(self) -> list[str]:
        """Frames to send as soon as the connection opens."""

    def receive(self, text: str, *, now: float, recv_us: int) -> list[Tick]:
        """Handle one frame received at ``now`` (steady clock) / ``recv_us`` (wall clock, µs).
        Never raises for a malformed frame."""


async def run_websocket(
    *,
    name: str,
    url: str,
    new_session: Callable[[float], Session],
    emit: Emit,
    backoff: Backoff,
    stats: ProviderStats,
    send_interval: float = 0.0,
    open_timeout: float = 10.0,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Connect to ``url`` and pump frames through fresh sessions forever (until cancelled)."""
    while True:
        wait = backoff.delay(clock())
        if wait > 0:
            log.info(
                "%s: reconnecting in %.2fs",
                name,
                wait,
                extra={
                    "event": "feed.reconnect_wait",
                    "provider": name,
                    "delay_s": round(wait, 3),
                    "failures": backoff.failures,
                },
            )
            await asyncio.sleep(wait)
        backoff.attempt(clock())
        stats.attempts += 1
        session: Session | None = None
        try:
            async with connect(
                url, open_timeout=open_timeout, close_timeout=2, max_size=MAX_FRAME_BYTES, compression=None
            ) as ws:
                stats.connected += 1
                metrics.provider_status(name, True)
                if stats.connected > 1:
                    metrics.provider_reconnect(name)
                session = new_session(clock())
                log.info(
                    "%s: connected to %s", name, url, extra={"event": "feed.connected", "provider": name, "url": url}
                )
                reason = await _pump(
                    ws,
                    session,
                    name=name,
                    emit=emit,
                    stats=stats,
                    backoff=backoff,
                    send_interval=send_interval,
                    clock=clock,
                )
        except ConnectionClosed as exc:
            reason = f"closed by the server ({exc.rcvd.code if exc.rcvd else 'no close frame'})"
        except (OSError, TimeoutError, WebSocketException) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        finally:
            metrics.provider_status(name, False)  # also when cancelled: the service is stopping
        stats.disconnects += 1
        if session is None or not session.healthy:
            backoff.failed()
        log.warning(
            "%s: disconnected: %s",
            name,
            reason,
            extra={"event": "feed.disconnected", "provider": name, "reason": reason},
        )


async def _pump(
    ws,
    session: Session,
    *,
    name: str,
    emit: Emit,
    stats: ProviderStats,
    backoff: Backoff,
    send_interval: float,
    clock: Callable[[], float],
) -> str:
    """Run one connection; returns why it should be dropped."""
    for i, frame in enumerate(session.opening()):
        if i and send_interval:
            await asyncio.sleep(send_interval)
        await ws.send(frame)
    while True:
        timeout = session.deadline - clock()
        try:
            if timeout <= 0:
                raise TimeoutError
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # races with a frame arriving, and the service could then never stop this task.
            async with asyncio.timeout(timeout):
                raw = await ws.recv()
        except TimeoutError:
            stats.silences += 1
            log.warning(
                "%s: provider silent past its liveness deadline", name, extra={"event": "feed.silent", "provider": name}
            )
            return "provider went silent"
        stats.messages += 1
        metrics.provider_message(name)
        text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
        for tick in session.receive(text, now=clock(), recv_us=time.time_ns() // 1000):
            stats.ticks += 1
            await emit(tick)
        if session.healthy and backoff.failures:
            backoff.succeeded()
        if session.reconnect:
            return session.reconnect
