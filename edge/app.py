"""The edge as a Quart application: routes, NATS lifecycle, shared per-process state."""

from __future__ import annotations

import asyncio
import logging

from quart import Quart, websocket

from tickmesh.contracts.channels import Channel, Kind
from tickmesh.contracts.instruments import instruments

from .hub import Hub
from .outbox import Outbox
from .settings import EdgeSettings
from .upstream import Upstream
from .ws import WebSocketConnection

log = logging.getLogger(__name__)


class EdgeState:
    """Everything one edge process shares between its connections."""

    def __init__(self, settings: EdgeSettings) -> None:
        self.settings = settings
        self.hub = Hub()
        self.upstream = Upstream(self.hub, url=settings.nats_url)
        self.connections = 0
        self.slow_consumers = 0
        self._known_symbols = frozenset(instruments())
        self._pending: dict[str, int] = {}  # subjects with an attach waiting on upstream

    def channel_exists(self, channel: Channel) -> bool:
        if channel.kind is Kind.PRICES:
            return channel.arg in self._known_symbols
        return True

    async def attach(self, subject: str, name: str, outbox: Outbox, *, conflate: bool, reply: bytes) -> None:
        """Subscribe upstream (if this edge is not already), then queue ``reply``, then deliver."""
        self._pending[subject] = self._pending.get(subject, 0) + 1
        try:
            await self.upstream.ensure(subject)
        finally:
            left = self._pending[subject] - 1
            if left:
                self._pending[subject] = left
            else:
                del self._pending[subject]
        outbox.push(reply)
        self.hub.add(subject, name, outbox, conflate=conflate)

    async def detach(self, subject: str, name: str, outbox: Outbox) -> None:
        """Stop delivering; release the upstream subscription when nobody here wants it."""
        if self.hub.remove(subject, name, outbox) and subject not in self._pending:
            await self.upstream.release(subject)


def create_app(settings: EdgeSettings) -> Quart:
    app = Quart("tickmesh.edge")
    state = EdgeState(settings)
    app.extensions["tickmesh"] = state

    @app.while_serving
    async def lifespan():
        connector = asyncio.ensure_future(state.upstream.connect())
        yield
        connector.cancel()
        await state.upstream.close()

    @app.get("/healthz")
    async def healthz():
        return {"status": "alive"}

    @app.get("/readyz")
    async def readyz():
        if state.upstream.connected:
            return {"status": "ready", "nats": "connected"}
        return {"status": "not ready", "nats": "disconnected"}, 503

    @app.websocket("/ws")
    async def ws():
        state.connections += 1
        try:
            await WebSocketConnection(websocket._get_current_object(), state).run()
        finally:
            state.connections -= 1

    return app
