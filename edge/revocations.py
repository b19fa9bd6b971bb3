"""The revocation feed: ``tm.ctl.revoke`` read from the ``TM_REVOCATIONS`` stream.

An admin tool publishes ``{"user": "<id>"}`` on ``tm.ctl.revoke`` (a plain NATS publish is
enough). The stream (``contracts/streams.toml``, created with the others by
``tickmesh.streams.ensure``) keeps those messages for ``EDGE_REVOCATION_TTL_S``, so every edge, including
one started after the revocation, reads every revocation still in force: at start-up the feed
replays the stream from its beginning and the edge reports ready only after that replay. The
revocation time is the stream's own timestamp of the message, the same on every edge.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import orjson
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy
from nats.js.client import JetStreamContext

from tickmesh import streams
from tickmesh.contracts.channels import REVOKE_SUBJECT, USER_ID_RE

log = logging.getLogger(__name__)


def parse(data: bytes) -> str | None:
    """The revoked user id of a ``tm.ctl.revoke`` message, or None for anything malformed."""
    try:
        user = orjson.loads(data).get("user")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return user if isinstance(user, str) and USER_ID_RE.fullmatch(user) else None


class RevocationFeed:
    """Replays then follows the revocation stream, calling ``on_revoke(user, at)`` for each."""

    def __init__(self, on_revoke: Callable[[str, float], None]) -> None:
        self._on_revoke = on_revoke
        self._sub: Any = None
        self._caught_up = asyncio.Event()
        self._until = 0

    async def start(self, js: JetStreamContext, timeout: float = 10.0) -> None:
        """Subscribe from the stream's first message and return once every revocation stored
        before this call has been applied (or ``timeout`` passed: then the edge goes on and the
        rest arrives shortly, which is logged)."""
        info = await js.stream_info(streams.REVOCATIONS)
        self._until = info.state.last_seq
        if info.state.messages == 0:
            self._caught_up.set()
        self._sub = await js.subscribe(
            REVOKE_SUBJECT,
            stream=streams.REVOCATIONS,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
            cb=self._on_msg,
        )
        try:
            await asyncio.wait_for(self._caught_up.wait(), timeout)
        except TimeoutError:
            log.warning("revocations not fully replayed in time; continuing", extra={"event": "auth.revocations_late"})

    async def _on_msg(self, msg: Msg) -> None:
        meta = msg.metadata
        user = parse(msg.data)
        if user is not None:
            self._on_revoke(user, meta.timestamp.timestamp())
        if meta.sequence.stream >= self._until:
            self._caught_up.set()
