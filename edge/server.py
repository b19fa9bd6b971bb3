"""Runs the edge: ``tickmesh edge`` (one process, or ``--workers N`` sharing the port).

With the direct engine (the default) the edge listens itself: every connection starts in the
engine's front door, ``/ws`` upgrades stay with the engine, and every other request goes to
Hypercorn's connection handler running the Quart app, with Quart's lifespan (the NATS
connection) driven by Hypercorn's own lifespan handler. This module is the only place that
reaches into Hypercorn below its public ``serve()``: ``TCPServer``, ``Lifespan`` and
``WorkerContext`` of ``hypercorn.asyncio``, pinned to the version range in pyproject.toml and
covered by the edge's tests. With ``EDGE_WS_ENGINE=quart`` the edge runs under Hypercorn's
``serve()`` unchanged, and Quart serves ``/ws`` too.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.asyncio.lifespan import Lifespan
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.asyncio.worker_context import WorkerContext
from hypercorn.config import Config
from hypercorn.utils import wrap_app

from tickmesh import config as cfg
from tickmesh import logs, metrics, runtime, tracing

from . import tls
from . import wsframes as wsf
from .app import create_app
from .settings import EdgeSettings
from .wsengine import Engine

log = logging.getLogger(__name__)

REUSE_PORT_ENV = "TICKMESH_EDGE_REUSE_PORT"  # set by the workers' parent: bind with SO_REUSEPORT


def hypercorn_config(settings: EdgeSettings) -> Config:
    """Hypercorn's settings for what it serves (all HTTP, and ``/ws`` on the quart engine).

    Slow clients: ``keep_alive_timeout`` cuts a connection that sits without a complete request
    head (Hypercorn counts it idle until then: on the quart engine it bounds the first head too,
    on the direct engine the front door's ``EDGE_HEAD_TIMEOUT_S`` does); a head over
    ``wsframes.MAX_HEAD`` bytes gets 431 on both engines; Quart's ``BODY_TIMEOUT`` and
    ``MAX_CONTENT_LENGTH`` (:mod:`app`) bound bodies. ``read_timeout`` stays off on purpose: an
    SSE stream or a long poll legitimately receives nothing from its client for minutes.
    """
    config = Config()
    config.bind = [f"{settings.host}:{settings.port}"]
    config.websocket_max_message_size = settings.hard_frame_bytes
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = 5
    config.backlog = settings.backlog  # Hypercorn's default, 100, drops SYNs in a reconnect storm
    config.keep_alive_timeout = settings.keep_alive
    config.h11_max_incomplete_size = wsf.MAX_HEAD
    config.read_timeout = None
    context = tls.context_for(settings)
    if context is not None:
        # Hypercorn's switch for TLS is "certfile and keyfile set"; the context it uses is ours,
        # the same one the direct engine listens with.
        config.certfile, config.keyfile = settings.tls_cert_file, settings.tls_key_file
        config.ca_certs = settings.tls_client_ca_file or None
        config.create_ssl_context = lambda: context  # type: ignore[method-assign]
        config.ssl_handshake_timeout = settings.head_timeout
    return config


def _disable_permessage_deflate() -> None:
    """Hypercorn accepts permessage-deflate whenever a client offers it and has no setting for
    it; compression is per connection, which would undo encode-once fan-out, so by default the
    edge declines the offer (the extension's ``accept`` returning None means "not accepted")."""
    from hypercorn.protocol import ws_stream
    from wsproto.extensions import PerMessageDeflate

    class Declined(PerMessageDeflate):
        def accept(self, offer):
            return None

    ws_stream.PerMessageDeflate = Declined  # type: ignore[misc]


def listening_socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


async def serve_direct(
    app: Any, config: Config, settings: EdgeSettings, shutdown_trigger: Callable[[], Awaitable[None]]
) -> None:
    """Serve ``app`` with the edge's engine in front (see the module docstring)."""
    loop = asyncio.get_running_loop()
    wrapped = wrap_app(app, config.wsgi_max_body_size, "asgi")
    lifespan_state: dict[str, Any] = {}
    lifespan = Lifespan(wrapped, config, loop, lifespan_state)
    lifespan_task = loop.create_task(lifespan.handle_lifespan())
    await lifespan.wait_for_startup()
    if lifespan_task.done() and lifespan_task.exception() is not None:
        raise lifespan_task.exception()  # type: ignore[misc]

    context = WorkerContext(None)
    http_tasks: set[asyncio.Task] = set()

    async def http_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await TCPServer(wrapped, loop, config, context, lifespan_state, reader, writer)

    def to_http(transport: asyncio.Transport, head: bytes) -> None:
        """Give a connection, and the bytes already read from it, to Hypercorn."""
        reader = asyncio.StreamReader(limit=2**16, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        protocol.data_received(head)
        task = loop.create_task(http_connection(reader, writer))
        http_tasks.add(task)
        task.add_done_callback(http_tasks.discard)

    state = app.extensions["tickmesh"]
    engine = Engine(state, to_http)
    sock = listening_socket(settings.host, settings.port, reuse_port=bool(os.environ.get(REUSE_PORT_ENV)))
    ssl_context = config.create_ssl_context() if config.ssl_enabled else None
    # With TLS, the handshake must finish within the head timeout too (asyncio's default is 60 s).
    server = await loop.create_server(
        engine.front_door,
        sock=sock,
        backlog=config.backlog,
        ssl=ssl_context,
        ssl_handshake_timeout=settings.head_timeout if ssl_context else None,
    )
    host, port = sock.getsockname()[:2]
    scheme = "https" if ssl_context else "http"
    await config.log.info(f"Running on {scheme}://{host}:{port} (CTRL + C to quit)")
    try:
        await shutdown_trigger()
    finally:
        server.close()
        await context.terminated.set()
        for conn in list(engine.connections):
            if conn.transport is not None:
                conn.transport.abort()
        if http_tasks:
            await asyncio.wait(list(http_tasks), timeout=config.graceful_timeout)
        await lifespan.wait_for_shutdown()
        lifespan_task.cancel()
        try:
            await lifespan_task
        except asyncio.CancelledError:
            pass


# Garbage collection: an edge holds tens of thousands of long-lived objects per thousand
# connections, and the default thresholds (a collection every 700 allocations, a full one every
# 70,000) made collections a tenth of the edge's time while clients connected (py-spy, 4,000
# clients). Objects made at start-up are frozen out of collection, and collections run after
# more allocations; connections break their own reference cycles when they end, so little is
# left for the collector.
GC_THRESHOLDS = (50_000, 20, 100)


def _raise_descriptor_limit() -> None:
    """Every connection is a descriptor: take the whole hard limit (the soft default is often
    1,024, which would refuse the 1,025th client with EMFILE)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _tune_gc() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def serve_edge(settings: EdgeSettings) -> None:
    if not settings.permessage_deflate:
        _disable_permessage_deflate()
    app = create_app(settings)
    _raise_descriptor_limit()
    _tune_gc()
    state = app.extensions["tickmesh"]
    stop = runtime.stop_event()

    async def drain_then_stop() -> None:
        await stop.wait()
        await state.drain()

    config = hypercorn_config(settings)
    if settings.ws_engine == "quart":
        await serve(app, config, shutdown_trigger=drain_then_stop)
    else:
        await serve_direct(app, config, settings, drain_then_stop)


def main() -> None:
    logs.setup("edge")
    settings = cfg.load(EdgeSettings)
    tls.context_for(settings)  # bad certificate files stop the edge here, with the setting named
    if settings.workers > 1 and not os.environ.get(REUSE_PORT_ENV):
        raise SystemExit(run_workers(settings))
    metrics.build_info("edge")
    tracing.setup("edge")
    try:
        runtime.run(serve_edge(settings))
    except OSError as exc:
        logging.getLogger(__name__).error(
            "cannot listen on %s:%d: %s",
            settings.host,
            settings.port,
            exc.strerror,
            extra={"event": "edge.bind_failed"},
        )
        print(
            f"tickmesh edge: port {settings.port} on {settings.host} is not available ({exc.strerror})", file=sys.stderr
        )
        raise SystemExit(2) from None
    finally:
        tracing.shutdown()


def run_workers(settings: EdgeSettings) -> int:
    """``--workers N``: N edge processes on one port (SO_REUSEPORT; the kernel spreads new
    connections over them). The parent holds the port (so port 0 resolves once for all), passes
    SIGTERM and SIGINT on, and restarts a worker that dies on its own. It exits when every worker
    has stopped after a signal."""
    holder = listening_socket(settings.host, settings.port, reuse_port=True)
    port = holder.getsockname()[1]
    env = dict(os.environ, EDGE_PORT=str(port), **{REUSE_PORT_ENV: "1"})
    argv = [sys.executable, "-m", "tickmesh", "edge"]
    procs: list[subprocess.Popen] = [subprocess.Popen(argv, env=env) for _ in range(settings.workers)]
    stopping = False

    def forward(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    log.info("edge workers started", extra={"event": "edge.workers", "workers": settings.workers, "port": port})
    restarted = [0.0] * len(procs)
    while True:
        now = time.monotonic()
        for i, proc in enumerate(procs):
            code = proc.poll()
            if code is not None and not stopping and now - restarted[i] >= 1.0:
                log.warning(
                    "edge worker %d exited with %s; restarting", proc.pid, code, extra={"event": "edge.worker_restart"}
                )
                procs[i] = subprocess.Popen(argv, env=env)
                restarted[i] = now
        if stopping and all(p.poll() is not None for p in procs):
            holder.close()
            return 0
        time.sleep(0.2)
