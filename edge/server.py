"""Runs the edge under Hypercorn: ``tickmesh edge``."""

from __future__ import annotations

import logging
import sys

from hypercorn.asyncio import serve
from hypercorn.config import Config

from tickmesh import config as cfg
from tickmesh import logs, metrics, runtime, tracing

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


def _disable_permessage_deflate() -> None:
    """Hypercorn accepts permessage-deflate whenever a client offers it and has no setting for
    it; compression is per connection, which would undo encode-once fan-out, so by default the
    edge declines the offer (the extension's ``accept`` returning None means "not accepted")."""
    from hypercorn.protocol import ws_stream
    from wsproto.extensions import PerMessageDeflate

    class Declined(PerMessageDeflate):
        def accept(self, offer):  # type: ignore[override]
            return None

    ws_stream.PerMessageDeflate = Declined


async def serve_edge(settings: EdgeSettings) -> None:
    if not settings.permessage_deflate:
        _disable_permessage_deflate()
    app = create_app(settings)
    state = app.extensions["tickmesh"]
    stop = runtime.stop_event()

    async def drain_then_stop() -> None:
        await stop.wait()
        await state.drain()

    await serve(app, hypercorn_config(settings), shutdown_trigger=drain_then_stop)


def main() -> None:
    logs.setup("edge")
    settings = cfg.load(EdgeSettings)
    metrics.build_info("edge")
    tracing.setup("edge")
    try:
        runtime.run(serve_edge(settings))
    except OSError as exc:
        logging.getLogger(__name__).error("cannot listen on %s:%d: %s", settings.host, settings.port, exc.strerror,
                                          extra={"event": "edge.bind_failed"})
        print(f"tickmesh edge: port {settings.port} on {settings.host} is not available ({exc.strerror})",
              file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        tracing.shutdown()
