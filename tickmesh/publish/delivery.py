"""Getting an event message stored in JetStream: acknowledgements, retries, a bounded buffer.

:meth:`Delivery.send` returns only when JetStream has acknowledged the message (its stream
sequence, and whether it was a duplicate), or raises a :mod:`~tickmesh.publish.errors` error.
Between those:

* **Waiting for NATS.** While the connection is down, the message waits (it is not written into
  the client's outbound buffer, so nothing piles up there) and goes out when NATS is back.
* **Retries.** A missing acknowledgement (timeout), JetStream not answering (no responders,
  leader election, 503) and a full outbound buffer are retried with jittered backoff until
  ``deliver_timeout`` has passed since the call. Every attempt carries the same
  ``Nats-Msg-Id``, so a message whose acknowledgement was lost is stored once.
* **The bound.** At most ``max_pending`` messages (and ``max_pending_bytes`` of payload) may be
  inside :meth:`send` at once, waiting or in flight. A call beyond that raises
  :class:`~tickmesh.publish.errors.BufferFull` at once: the message was not taken and the
  caller knows it. Nothing is ever dropped silently.
* **What is final.** Schema errors never get here (checked before). A publish NATS refuses for
  permissions raises :class:`PublishDenied` on the first attempt; a JetStream error that
  retrying cannot fix raises :class:`PublishRejected`; a closed connection
  :class:`PublisherClosed`; running out of time :class:`PublishTimeout` (the message may be
  stored: publish again with the same id).

Order: a caller that awaits each publish before the next gets them stored in that order.
Concurrent publishes are stored in the order NATS receives them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import nats.errors as nerr
from nats.js import errors as jserr

from tickmesh.backoff import Backoff

from .errors import BufferFull, PublishDenied, PublisherClosed, PublishRejected, PublishTimeout

# JetStream answers worth retrying: 503 (no quorum, no suitable peers) and 408-ish timeouts.
_RETRY_CODES = frozenset({408, 503, 504})
_PERMISSIONS = "permissions violation for publish to"


@dataclass(frozen=True, slots=True)
class Ack:
    """JetStream's acknowledgement: the stream that stored the message, its sequence there, and
    whether it was a duplicate of one stored before (same ``Nats-Msg-Id`` within the window)."""

    stream: str
    seq: int
    duplicate: bool


class Delivery:
    def __init__(
        self, nc: Any, *, max_pending: int, max_pending_bytes: int, ack_timeout: float, deliver_timeout: float
    ) -> None:
        if max_pending < 1 or max_pending_bytes < 1 or ack_timeout <= 0 or deliver_timeout <= 0:
            raise ValueError("limits and timeouts must be positive")
        self.nc = nc
        self.max_pending = max_pending
        self.max_pending_bytes = max_pending_bytes
        self.ack_timeout = ack_timeout
        self.deliver_timeout = deliver_timeout
        self.pending = 0
        self.pending_bytes = 0
        self.retries = 0
        self._js: Any = None
        self._up = asyncio.Event()
        self._watcher: asyncio.Future | None = None

    def _admit(self, subject: str, size: int) -> None:
        if self.pending >= self.max_pending:
            raise BufferFull(
                f"{self.pending} messages already wait for NATS (max_pending={self.max_pending}); "
                f"{subject} was not sent",
                subject=subject,
                limit="max_pending",
            )
        if self.pending_bytes + size > self.max_pending_bytes:
            raise BufferFull(
                f"{self.pending_bytes} bytes already wait for NATS (max_pending_bytes="
                f"{self.max_pending_bytes}); {subject} was not sent",
                subject=subject,
                limit="max_pending_bytes",
            )
        self.pending += 1
        self.pending_bytes += size

    async def send(self, subject: str, payload: bytes, headers: dict[str, str]) -> Ack:
        """Store one message; see the module docstring for what is guaranteed."""
        self._admit(subject, len(payload))
        try:
            return await self._send(subject, payload, headers)
        finally:
            self.pending -= 1
            self.pending_bytes -= len(payload)

    async def _send(self, subject: str, payload: bytes, headers: dict[str, str]) -> Ack:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.deliver_timeout
        backoff = Backoff(base=0.05, cap=2.0)
        attempts = 0
        last = "no attempt"
        while True:
            if self.nc.is_closed:
                raise PublisherClosed(f"the NATS connection is closed; {subject} was not sent", subject=subject)
            remaining = deadline - loop.time()
            if self.nc.is_connected and remaining > 0:
                attempts += 1
                try:
                    if self._js is None:
                        self._js = self.nc.jetstream()
                    ack = await self._js.publish(
                        subject, payload, timeout=min(self.ack_timeout, remaining), headers=dict(headers)
                    )
                    return Ack(ack.stream, ack.seq, bool(ack.duplicate))
                except (TimeoutError, nerr.TimeoutError):
                    self._raise_if_denied(subject)
                    last = "no acknowledgement"
                except jserr.NoStreamResponseError:
                    self._raise_if_denied(subject)
                    last = "JetStream did not answer (no stream, or JetStream unavailable)"
                except jserr.APIError as exc:
                    if exc.code not in _RETRY_CODES:
                        raise PublishRejected(
                            f"JetStream refused {subject}: {exc.description or exc}",
                            subject=subject,
                            err_code=exc.err_code,
                        ) from None
                    last = f"JetStream: {exc.description or exc}"
                except nerr.MaxPayloadError:
                    raise PublishRejected(
                        f"{subject}: the message is larger than the server accepts", subject=subject
                    ) from None
                except (nerr.ConnectionClosedError, nerr.ConnectionDrainingError):
                    raise PublisherClosed(
                        f"the NATS connection closed; {subject} may not be stored", subject=subject
                    ) from None
                except (nerr.OutboundBufferLimitError, nerr.ConnectionReconnectingError, nerr.FlushTimeoutError) as exc:
                    last = f"NATS connection: {type(exc).__name__}"
            elif remaining > 0:
                last = "NATS unreachable"
                await self._wait_connected(remaining)
                continue
            now = loop.time()
            if now >= deadline:
                raise PublishTimeout(
                    f"{subject} not acknowledged within {self.deliver_timeout:g}s "
                    f"({attempts} attempts; last: {last}); it may be stored: publish it again "
                    "with the same id",
                    subject=subject,
                    attempts=attempts,
                )
            self.retries += 1
            await asyncio.sleep(min(backoff.next_delay(now), max(deadline - now, 0.0)))

    async def _wait_connected(self, timeout: float) -> None:
        """Wait until the connection is up again (or ``timeout``): one watcher polls the client
        for every waiting message, and they resume in the order they started waiting."""
        if self._watcher is None or self._watcher.done():
            self._up.clear()
            self._watcher = asyncio.ensure_future(self._watch())
        try:
            async with asyncio.timeout(timeout):
                await self._up.wait()
        except TimeoutError:
            pass

    async def _watch(self) -> None:
        while not self.nc.is_connected and not self.nc.is_closed:
            await asyncio.sleep(0.05)
        self._up.set()

    def _raise_if_denied(self, subject: str) -> None:
        """NATS reports a publish it refuses for permissions asynchronously (``-ERR``), then drops
        it; the client keeps the error as ``last_error``. Name it instead of retrying."""
        err = getattr(self.nc, "last_error", None)
        text = str(err).lower() if err is not None else ""
        if _PERMISSIONS in text and f'"{subject.lower()}"' in text:
            raise PublishDenied(f"this NATS identity may not publish to {subject} (permissions)", subject=subject)
