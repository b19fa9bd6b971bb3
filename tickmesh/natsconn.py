"""The one way tickmesh processes connect to NATS: reconnect forever, log connection changes,
authenticate as the process's own NATS identity (:class:`Credentials`)."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping

import nats
from nats.aio.client import Client

log = logging.getLogger(__name__)


StatusCallback = Callable[[bool], "Awaitable[None] | None"]


@dataclass(frozen=True)
class Credentials:
    """How a process proves its NATS identity: a user and password, a token, or a ``.creds``
    file (JWT and nkey seed, for operator-mode accounts). Secrets never appear in ``repr``."""

    user: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    creds_file: str | None = None

    @classmethod
    def of(cls, value: "Credentials | str | os.PathLike[str] | Mapping[str, str] | None") -> "Credentials":
        """``None`` (anonymous), a :class:`Credentials`, a path to a ``.creds`` file, or a
        mapping with the fields above."""
        if value is None:
            return cls()
        if isinstance(value, Credentials):
            return value
        if isinstance(value, (str, os.PathLike)):
            return cls(creds_file=os.fspath(value))
        unknown = set(value) - {"user", "password", "token", "creds_file"}
        if unknown:
            raise ValueError(f"unknown credential field(s): {sorted(unknown)}")
        return cls(**value)

    def options(self) -> dict[str, Any]:
        """Keyword arguments for ``nats.connect``."""
        out: dict[str, Any] = {}
        if self.user is not None:
            out["user"] = self.user
            out["password"] = self.password or ""
        if self.token is not None:
            out["token"] = self.token
        if self.creds_file is not None:
            out["user_credentials"] = self.creds_file
        return out


async def connect(url: str, *, name: str, first_attempt_timeout: float | None = None,
                  on_status: StatusCallback | None = None, credentials: Credentials | None = None,
                  **options: Any) -> Client:
    """Connect to ``url`` (comma-separated servers allowed), retrying the first connection with
    backoff until it succeeds (or ``first_attempt_timeout`` seconds pass), then letting the client
    library reconnect forever (it restores subscriptions). ``on_status(False)`` is called on each
    disconnect and ``on_status(True)`` on each reconnect. ``credentials`` authenticate the
    connection; other ``options`` go to ``nats.connect`` as they are."""

    async def status(up: bool) -> None:
        if on_status is not None:
            res = on_status(up)
            if inspect.isawaitable(res):
                await res

    async def on_disconnect() -> None:
        log.warning("NATS disconnected", extra={"event": "nats.disconnected"})
        await status(False)

    async def on_reconnect() -> None:
        log.info("NATS reconnected", extra={"event": "nats.reconnected"})
        await status(True)

    async def on_error(exc: Exception) -> None:
        from tickmesh import metrics

        metrics.nats_error(exc)
        log.warning("NATS error: %s", exc, extra={"event": "nats.error"})

    servers = [u.strip() for u in url.split(",") if u.strip()]
    loop = asyncio.get_running_loop()
    deadline = None if first_attempt_timeout is None else loop.time() + first_attempt_timeout
    delay = 0.2
    while True:
        try:
            nc = await nats.connect(
                servers=servers, name=name, max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                connect_timeout=2, disconnected_cb=on_disconnect, reconnected_cb=on_reconnect,
                error_cb=on_error, **(credentials.options() if credentials else {}), **options,
            )
            log.info("connected to NATS at %s", nc.connected_url.netloc if nc.connected_url else url,
                     extra={"event": "nats.connected"})
            return nc
        except Exception as exc:
            if deadline is not None and loop.time() + delay > deadline:
                raise
            log.warning("NATS not reachable at %s (%s); retrying in %.1fs", url, exc, delay,
                        extra={"event": "nats.unreachable"})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
