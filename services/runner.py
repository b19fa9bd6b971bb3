"""What every service process shares: start-up, NATS, graceful SIGTERM, answering commands, and
the observability every process has (metrics on ``METRICS_PORT``, tracing, build info).

A service module defines ``SETTINGS`` (its settings dataclass, which must have ``nats_url``) and
``async def serve(settings, nc, stop)``; :func:`run_service` does the rest, so that every service
logs, connects, reconnects, exports metrics and traces, and stops the same way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import ConnectionReconnectingError, NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import NoStreamResponseError, ServiceUnavailableError

from tickmesh import config as cfg
from tickmesh import logs, metrics, runtime, tracing
from tickmesh.contracts import commands as cmds
from tickmesh.contracts.codes import ERRORS, ErrorCode
from tickmesh.contracts.messages import ContractError
from tickmesh.natsconn import connect
from tickmesh.publish import traced

log = logging.getLogger(__name__)

Serve = Callable[[Any, Client, asyncio.Event], Awaitable[None]]


def run_service(name: str, settings_cls: type, serve: Serve) -> None:
    """Entry point body for ``tickmesh service NAME``.

    Settings are read (and refused) before anything starts; ``/metrics`` is served from then on
    when ``METRICS_PORT`` is set, and tracing is on when an ``OTEL_*`` exporter is configured
    (pending spans are flushed on the way out).
    """
    logs.setup(name)
    settings: Any = cfg.load(settings_cls)
    metrics_settings = cfg.load(metrics.MetricsSettings)
    metrics.build_info(name)
    tracing.setup(name)
    server = metrics.serve(metrics_settings)

    async def main() -> None:
        stop = runtime.stop_event()
        nc = await connect(settings.nats_url, name=f"tickmesh-{name}", on_status=metrics.nats_status)
        metrics.nats_status(True)
        log.info("%s started", name, extra={"event": "service.started"})
        try:
            await serve(settings, nc, stop)
        finally:
            try:
                await nc.drain()
            except Exception:  # already closed
                pass
            log.info("%s stopped", name, extra={"event": "service.stopped"})

    try:
        runtime.run(main())
    finally:
        tracing.shutdown()
        if server is not None:
            server.shutdown()


class CommandError(Exception):
    """Raised by a command handler: becomes an ``err`` reply with a stable code, and ``data``
    when the client needs more than the code to act (610 carries the current watch-list)."""

    def __init__(self, code: int, reason: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.code = int(code)
        self.reason = reason
        self.data = data


Handler = Callable[[cmds.CommandRequest], Awaitable[dict[str, Any] | None]]

_ERROR_NAMES = {info.code: name for name, info in ERRORS.items()}
# JetStream or the connection briefly unable to answer (a NATS node lost and its streams electing
# new leaders, a reconnect to another server): the command is answered 501, retryable with the
# same key, not 500. Handlers are written so that a retry completes what was interrupted.
_TRANSIENT = (
    NatsTimeout,
    NoRespondersError,
    NoStreamResponseError,
    ServiceUnavailableError,
    ConnectionReconnectingError,
)


async def wait_wake_or_stop(wake: asyncio.Event, stop: asyncio.Event, timeout: float | None) -> None:
    """Return when ``wake`` or ``stop`` is set, or after ``timeout`` seconds (``None``: no limit).

    The loop of a service that works on a schedule (throttled publishing, scheduled
    announcements) waits here between passes, so SIGTERM ends the wait at once.
    """
    waits = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stop.wait())]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


def _command_trace(span: str, headers: dict[str, str] | None, cmd_id: str):
    """The span a command is handled in: the caller's trace continued (the edge injects it), or a
    new one when the request carries none. Either way a command is always traced (tracing on)."""
    attributes = {"tickmesh.cmd_id": cmd_id}
    if tracing.carries_trace(headers):
        return tracing.receive(span, headers, kind=tracing.SERVER, attributes=attributes, link=False)
    return tracing.command(span, kind=tracing.SERVER, attributes=attributes)


async def _answer(handler: Handler, req: cmds.CommandRequest, tr: Any) -> tuple[str, bytes]:
    """``(result, reply)``; a :class:`CommandError` is an answer (noted on the span, which it does
    not mark failed), anything else escapes (and marks it)."""
    try:
        data = await handler(req)
    except CommandError as exc:
        tr.set("tickmesh.error_code", exc.code)
        return _ERROR_NAMES.get(exc.code, metrics.OTHER), cmds.reply_err(exc.code, exc.reason, exc.data)
    return "ok", cmds.reply_ok(data)


async def serve_commands(nc: Client, service: str, handlers: dict[str, Handler]) -> list:
    """Answer every command of ``service`` (from commands.toml) with ``handlers[name]``.

    Subscriptions use the queue group ``service`` so that several instances share the load. A
    malformed request gets an ``invalid_field`` reply; a handler's :class:`CommandError` its own
    code; NATS unable to answer for a moment ``unavailable`` (501: retry with the same key); any
    other exception ``internal`` (and a log line), never a crash.

    Each command is counted (``tickmesh_commands_total``, by result, and its handler's duration)
    and handled inside a span named ``"<service> <command>"``. What the handler publishes with
    ``tickmesh.publish`` carries that span's trace context: an order's execution continues the
    order's trace (``trace_headers()`` gives the headers for a plain ``nc.publish``).
    """
    missing = {c.name for c in cmds.commands().values() if c.service == service} - set(handlers)
    if missing:
        raise ValueError(f"{service} has no handler for {sorted(missing)}")
    by_subject = {cmds.command_subject(c.name): c.name for c in cmds.commands().values() if c.service == service}

    async def on_request(msg: Msg) -> None:
        started = time.perf_counter()
        name = by_subject.get(msg.subject, metrics.OTHER)
        try:
            req = cmds.decode_request(msg.data)
            name = req.name
            with traced(_command_trace(f"{service} {name}", msg.headers, req.cmd_id)) as tr:
                result, reply = await _answer(handlers[name], req, tr)
        except ContractError as exc:
            result = "invalid_field"
            reply = cmds.reply_err(ErrorCode.INVALID_FIELD, str(exc))
        except _TRANSIENT as exc:
            result = "unavailable"
            log.warning(
                "command %s: NATS unavailable (%s)",
                name,
                type(exc).__name__,
                extra={"event": "command.unavailable", "subject": msg.subject},
            )
            reply = cmds.reply_err(
                ErrorCode.UNAVAILABLE, "a backend is unavailable for a moment; retry with the same key"
            )
        except Exception:
            result = "internal"
            log.exception("command handler failed", extra={"event": "command.failed", "subject": msg.subject})
            reply = cmds.reply_err(ErrorCode.INTERNAL, "internal error")
        metrics.command_done(name, result, time.perf_counter() - started)
        if msg.reply:
            await msg.respond(reply)

    subs = []
    for subject in cmds.service_subjects(service):
        subs.append(await nc.subscribe(subject, queue=service, cb=on_request))
    return subs
