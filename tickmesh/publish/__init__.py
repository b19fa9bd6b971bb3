"""Publish to tickmesh from any Python service: ``tickmesh.publish``.

::

    from tickmesh.publish import Publisher

    async with await Publisher.connect("nats://nats:4222", {"user": "risk", "password": secret}) as pub:
        await pub.notify("alice", "Margin call: add 1,200.00 by 16:00", kind="risk", severity="critical",
                         id=f"margin-{account}-{day}")

Every message is validated against ``contracts/messages.toml`` before it is sent (an
:class:`InvalidMessage` names the field), addressed by the contracts (never a hand-made subject),
carries the current trace context, and, on event channels, is stored once (``Nats-Msg-Id``) and
acknowledged before the call returns, retried and buffered (bounded) while NATS is unreachable.
:mod:`.publisher` says exactly what each call guarantees; :mod:`.errors` what it raises.

The services of this repository publish through this same API.
"""

from tickmesh.natsconn import Credentials

from .context import Versions, current_trace, new_id, now_us, stable_id, trace_headers, traced
from .delivery import Ack
from .errors import (
    BufferFull,
    InvalidMessage,
    PublishDenied,
    PublisherClosed,
    PublishError,
    PublishRejected,
    PublishTimeout,
    UnknownChannel,
)
from .publisher import EXPECTED_STREAM_HEADER, MSG_ID_HEADER, Publisher

__all__ = [
    "Ack",
    "BufferFull",
    "Credentials",
    "EXPECTED_STREAM_HEADER",
    "InvalidMessage",
    "MSG_ID_HEADER",
    "PublishDenied",
    "PublishError",
    "PublishRejected",
    "PublishTimeout",
    "Publisher",
    "PublisherClosed",
    "UnknownChannel",
    "Versions",
    "current_trace",
    "new_id",
    "now_us",
    "stable_id",
    "trace_headers",
    "traced",
]
