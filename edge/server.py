"""Runs the edge under Hypercorn: ``tickmesh edge``."""

from __future__ import annotations

import logging

from hypercorn.asyncio import serve
from hypercorn.config import Config

from tickmesh import config as cfg
from tickmesh import logs, runtime

from .app import create_app
from .settings import EdgeSettings


def hypercorn_config(settings: EdgeSettings) -> Config:
    config = Config()
    config.bind = [f"{settings.host}:{settings.port}"]
    config.websocket_max_message_size = settings.hard_frame_bytes
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = 5
    return config


async def serve_edge(settings: EdgeSettings) -> None:
    app = create_app(settings)
    stop = runtime.stop_event()
    await serve(app, hypercorn_config(settings), shutdown_trigger=stop.wait)


def main() -> None:
    logs.setup("edge")
    settings = cfg.load(EdgeSettings)
    runtime.run(serve_edge(settings))
