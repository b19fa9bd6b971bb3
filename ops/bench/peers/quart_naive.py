"""Peer: the naive broadcaster (:mod:`.naive`) as a Quart app served by Hypercorn on uvloop."""

from __future__ import annotations

from hypercorn.asyncio import serve
from hypercorn.config import Config
from quart import Quart, websocket

from tickmesh import runtime

from .naive import NaiveHub, port, serve_connection


def create_app() -> Quart:
    app = Quart("bench-quart-naive")
    hub = NaiveHub()

    @app.while_serving
    async def lifespan():
        await hub.start()
        yield
        await hub.stop()

    @app.get("/healthz")
    async def healthz():
        return {"status": "alive"}

    @app.websocket("/ws")
    async def ws():
        await websocket.accept()
        await serve_connection(hub, websocket.receive, websocket.send)

    return app


async def main() -> None:
    config = Config()
    config.bind = [f"127.0.0.1:{port()}"]
    config.accesslog = None
    config.graceful_timeout = 1
    stop = runtime.stop_event()
    await serve(create_app(), config, shutdown_trigger=stop.wait)


if __name__ == "__main__":
    runtime.run(main())
