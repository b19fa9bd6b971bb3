"""What every service process shares: start-up, NATS, graceful SIGTERM, and answering commands.

A service module defines ``SETTINGS`` (its settings dataclass, which must have ``nats_url``) and
``async def serve(settings, nc, stop)``; :func:`run_service` does the rest, so that every service
logs, connects, reconnects and stops the same way.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

from nats.aio.client import Client
from nats.aio.msg import Msg

from tickmesh import config as cfg
from tickmesh import logs, runtime
from tickmesh.contracts import commands as cmds
from tickmesh.contracts.codes import ErrorCode
from tickmesh.contracts.messages import ContractError
from tickmesh.natsconn import connect

log = logging.getLogger(__name__)

Serve = Callable[[Any, Client, asyncio.Event], Awaitable[None]]


def run_service(name: str, settings_cls: type, serve: Serve) -> None:
    """Entry point body for ``tickmesh service NAME``."""
    logs.setup(name)
    settings = cfg.load(settings_cls)

    async def main() -> None:
        stop = runtime.stop_event()
        nc = await connect(settings.nats_url, name=f"tickmesh-{name}")
        log.info("%s started", name, extra={"event": "service.started"})
        try:
            await serve(settings, nc, stop)
        finally:
            try:
                await nc.drain()
            except Exception:  # already closed
                pass
            log.info("%s stopped", name, extra={"event": "service.stopped"})

    runtime.run(main())


class CommandError(Exception):
    """Raised by a command handler: becomes an ``err`` reply with a stable code."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = int(code)
        self.reason = reason


Handler = Callable[[cmds.CommandRequest], Awaitable[dict[str, Any] | None]]


async def serve_commands(nc: Client, service: str, handlers: dict[str, Handler]) -> list:
    """Answer every command of ``service`` (from commands.toml) with ``handlers[name]``.

    Subscriptions use the queue group ``service`` so that several instances share the load. A
    malformed request gets an ``invalid_field`` reply; a handler's :class:`CommandError` its own
    code; any other exception ``internal`` (and a log line), never a crash.
    """
    missing = {c.name for c in cmds.commands().values() if c.service == service} - set(handlers)
    if missing:
        raise ValueError(f"{service} has no handler for {sorted(missing)}")

    async def on_request(msg: Msg) -> None:
        try:
            req = cmds.decode_request(msg.data)
            data = await handlers[req.name](req)
            reply = cmds.reply_ok(data)
        except ContractError as exc:
            reply = cmds.reply_err(ErrorCode.INVALID_FIELD, str(exc))
        except CommandError as exc:
            reply = cmds.reply_err(exc.code, exc.reason)
        except Exception:
            log.exception("command handler failed", extra={"event": "command.failed", "subject": msg.subject})
            reply = cmds.reply_err(ErrorCode.INTERNAL, "internal error")
        if msg.reply:
            await msg.respond(reply)

    subs = []
    for subject in cmds.service_subjects(service):
        subs.append(await nc.subscribe(subject, queue=service, cb=on_request))
    return subs
