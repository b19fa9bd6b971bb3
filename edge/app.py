"""The edge as a Quart application: routes and the NATS lifecycle."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from prometheus_client import Gauge
from quart import Quart, request, send_from_directory, websocket

from tickmesh import metrics

from . import fallback, httpguard
from . import ws as ws_transport
from .settings import EdgeSettings
from .state import EdgeState

log = logging.getLogger(__name__)

# Growth with the load gone is a leak (the soak test checks it): the direct engine runs no task
# per connection, the quart engine one or two.
_TASKS = Gauge("tickmesh_edge_asyncio_tasks", "asyncio tasks alive in the edge process", registry=metrics.REGISTRY)

_REPO_DASHBOARD = Path(__file__).resolve().parent.parent / "web" / "apps" / "dashboard" / "dist"


def create_app(settings: EdgeSettings) -> Quart:
    app = Quart("tickmesh.edge")
    state = EdgeState(settings)
    app.extensions["tickmesh"] = state

    @app.while_serving
    async def lifespan():
        starter = asyncio.ensure_future(state.start())
        yield
        starter.cancel()
        await state.stop()

    @app.get("/healthz")
    async def healthz():
        return {"status": "alive"}

    @app.get("/readyz")
    async def readyz():
        if state.ready and state.upstream.connected and not state.draining:
            return {"status": "ready", "nats": "connected"}
        reason = "draining" if state.draining else "nats disconnected" if state.ready else "starting"
        return {"status": "not ready", "reason": reason}, 503

    @app.get("/metrics")
    async def metrics_route():
        _TASKS.set(len(asyncio.all_tasks()))
        body, content_type = metrics.render(request.headers.get("Accept"))
        return body, 200, {"Content-Type": content_type}

    @app.websocket("/ws")
    async def ws():
        await ws_transport.serve(websocket._get_current_object(), state)  # type: ignore[attr-defined]

    httpguard.register(app, settings)
    fallback.register(app, state)

    if settings.dev_mode:
        from . import devroutes

        devroutes.register(app, state)

    static = Path(settings.static_dir) if settings.static_dir else _REPO_DASHBOARD

    @app.get("/")
    async def index():
        if not (static / "index.html").exists():
            return (
                "tickmesh edge: the dashboard is not built (cd web && npm ci && npm run build); "
                "the WebSocket endpoint is /ws\n",
                200,
                {"Content-Type": "text/plain"},
            )
        return await send_from_directory(static, "index.html")

    @app.get("/assets/<path:name>")
    async def assets(name: str):
        return await send_from_directory(static / "assets", name)

    return app
