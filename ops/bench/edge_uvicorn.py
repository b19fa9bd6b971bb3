"""A variant of the system under test: the tickmesh edge's Quart app, unchanged, served by
uvicorn (websockets implementation, uvloop) instead of Hypercorn.

Issue 8 asks whether Hypercorn's WebSocket path can reach the targets; this runs the same app
under another ASGI server so the bench can answer with numbers (``--target tickmesh-uvicorn``).
Not a supported way to run the edge: no drain on SIGTERM, permessage-deflate off.
"""

from __future__ import annotations

import uvicorn

from tickmesh import config as cfg
from tickmesh import logs
from tickmesh.edge.app import create_app
from tickmesh.edge.settings import EdgeSettings


def main() -> None:
    logs.setup("edge")
    settings = cfg.load(EdgeSettings)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        ws="websockets",
        ws_max_size=settings.hard_frame_bytes,
        ws_per_message_deflate=False,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )


if __name__ == "__main__":
    main()
