"""Peer: the naive broadcaster (:mod:`.naive`) as a Starlette app served by uvicorn on uvloop."""

from __future__ import annotations

import contextlib

import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from .naive import NaiveHub, port, serve_connection


def create_app() -> Starlette:
    hub = NaiveHub()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await hub.start()
        yield
        await hub.stop()

    async def healthz(request):
        return JSONResponse({"status": "alive"})

    async def ws(websocket: WebSocket):
        await websocket.accept()
        with contextlib.suppress(WebSocketDisconnect):
            await serve_connection(hub, websocket.receive_text, websocket.send_text)

    return Starlette(routes=[Route("/healthz", healthz), WebSocketRoute("/ws", ws)], lifespan=lifespan)


if __name__ == "__main__":
    uvicorn.run(create_app(), host="127.0.0.1", port=port(), loop="uvloop", log_level="warning", access_log=False)
