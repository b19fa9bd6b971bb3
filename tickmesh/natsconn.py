"""The one way tickmesh processes connect to NATS: reconnect forever, log connection changes,
authenticate as the process's own NATS identity.

Each component has its own NATS user with the permissions of its role
(``contracts/permissions.toml``). Which user a process is comes from :class:`NatsSettings`
(``NATS_USER`` and ``NATS_PASSWORD``, or ``NATS_CREDS``), and its reply subjects start with
``NATS_INBOX_PREFIX``, the only inbox its permissions let it subscribe to, so no component can
read another's replies. ``tickmesh up`` and the Helm chart set these per component.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client

from tickmesh.backoff import Backoff
from tickmesh.config import setting

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NatsSettings:
    user: str = setting("NATS_USER", "", "NATS user of this process (empty: anonymous, or NATS_CREDS)")
    password: str = setting("NATS_PASSWORD", "", "Password of NATS_USER (from a secret; never logged)")
    creds: str = setting("NATS_CREDS", "", "Path of a NATS .creds file (JWT and nkey seed) instead of a user")
    inbox_prefix: str = setting(
        "NATS_INBOX_PREFIX",
        "",
        "Prefix of this process's reply subjects (empty: _INBOX_<NATS_USER>, or _INBOX); "
        "its NATS permissions allow only its own",
    )

    def credentials(self) -> Credentials | None:
        if self.creds:
            return Credentials(creds_file=self.creds)
        if self.user:
            return Credentials(user=self.user, password=self.password)
        return None


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
    def of(cls, value: Credentials | str | os.PathLike[str] | Mapping[str, str] | None) -> Credentials:
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


async def connect(
    url: str,
    *,
    name: str,
    first_attempt_timeout: float | None = None,
    on_status: StatusCallback | None = None,
    credentials: Credentials | None = None,
    **options: Any,
) -> Client:
    """Connect to ``url`` (comma-separated servers allowed), retrying the first connection with
    backoff until it succeeds (or ``first_attempt_timeout`` seconds pass), then letting the client
    library reconnect forever (it restores subscriptions). ``on_status(False)`` is called on each
    disconnect and ``on_status(True)`` on each reconnect. ``credentials`` authenticate the
    connection (default: :class:`NatsSettings` from the environment, with its inbox prefix);
    other ``options`` go to ``nats.connect`` as they are."""
    if credentials is None:
        from tickmesh import config

        env = config.load(NatsSettings)
        credentials = env.credentials()
        options.setdefault("inbox_prefix", env.inbox_prefix or inbox_for(credentials))
    else:
        options.setdefault("inbox_prefix", inbox_for(credentials))
    connected = False

    async def status(up: bool) -> None:
        if on_status is not None:
            res = on_status(up)
            if inspect.isawaitable(res):
                await res

    async def on_disconnect() -> None:
        if not connected:
            return  # a first attempt that failed: reported by the retry loop
        log.warning("NATS disconnected", extra={"event": "nats.disconnected"})
        await status(False)

    async def on_reconnect() -> None:
        log.info("NATS reconnected", extra={"event": "nats.reconnected"})
        await status(True)

    async def on_error(exc: Exception) -> None:
        from tickmesh import metrics

        metrics.nats_error(exc)
        if not connected and _AUTH_VIOLATION in str(exc).lower():
            # The client library would retry refused credentials forever: stop here, say why.
            raise NatsAuthError(f"NATS refused the credentials of {_who(credentials)} at {redact_url(url)}")
        if not connected:
            return
        log.warning("NATS error: %s", exc, extra={"event": "nats.error"})

    servers = [u.strip() for u in url.split(",") if u.strip()]
    loop = asyncio.get_running_loop()
    deadline = None if first_attempt_timeout is None else loop.time() + first_attempt_timeout
    backoff = Backoff(base=0.2, cap=5.0)
    while True:
        nc = Client()
        try:
            await nc.connect(
                servers=servers,
                name=name,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,  # type: ignore[arg-type]  # nats-py annotates int, takes seconds as float
                connect_timeout=2,
                disconnected_cb=on_disconnect,
                reconnected_cb=on_reconnect,
                error_cb=on_error,
                **(credentials.options() if credentials else {}),
                **options,
            )
            connected = True
            log.info(
                "connected to NATS at %s",
                nc.connected_url.netloc.rpartition("@")[2] if nc.connected_url else redact_url(url),
                extra={"event": "nats.connected"},
            )
            return nc
        except NatsAuthError:
            await _discard(nc)
            raise
        except Exception as exc:
            await _discard(nc)
            delay = backoff.next_delay(loop.time())
            if deadline is not None and loop.time() + delay > deadline:
                raise
            log.warning(
                "NATS not reachable at %s (%s); retrying in %.1fs",
                redact_url(url),
                exc,
                delay,
                extra={"event": "nats.unreachable"},
            )
            await asyncio.sleep(delay)


_AUTH_VIOLATION = "authorization violation"


class NatsAuthError(ConnectionError):
    """NATS refused this process's credentials (wrong user or password, unknown creds file)."""


def _who(credentials: Credentials | None) -> str:
    if credentials is None:
        return "an anonymous connection (set NATS_USER and NATS_PASSWORD, or NATS_CREDS)"
    if credentials.user:
        return f"user {credentials.user!r}"
    return "the configured credentials"


def inbox_for(credentials: Credentials | None) -> str:
    """The reply-subject prefix for ``credentials``: ``_INBOX_<user>`` (what its permissions allow)."""
    from tickmesh.contracts.permissions import DEFAULT_INBOX, inbox_prefix

    return inbox_prefix(credentials.user) if credentials is not None and credentials.user else DEFAULT_INBOX


def redact_url(url: str) -> str:
    """``url`` (comma-separated servers) without any ``user:password@`` part, for logs."""
    return ",".join(
        u.strip().split("://", 1)[0] + "://" + u.strip().split("://", 1)[-1].rpartition("@")[2]
        if "://" in u
        else u.strip().rpartition("@")[2]
        for u in url.split(",")
    )


async def _discard(nc: Client) -> None:
    try:
        await nc.close()
    except Exception:  # noqa: BLE001 - nothing was established
        pass
