"""Trade notifications: every execution on any user's ``trades`` channel becomes a notification.

Executions are read through a durable JetStream consumer (``notifier-trades``) on the user-events
stream, not a core subscription: a notifier that was down catches up on what it missed, and
several instances share the work. A message is acknowledged only after its notification is
stored; a redelivery publishes the same notification id, which the stream's duplicate window
absorbs, so redeliveries are unlimited and nothing is given up on.

A delivery can still go to an instance that is gone (killed while its pull request waited on
the server): the server hands the message out again after :data:`ACK_WAIT_S`, which therefore
bounds how late such a notification comes. A clean stop lets the pending pull request run out
first instead of abandoning it.

An execution that carries a trace (an order's, from the edge through the broker) is handled in a
``notifier.trade`` span of that trace, and its notification carries the trace on to the edge.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from tickmesh import metrics, streams, tracing
from tickmesh.contracts import messages
from tickmesh.contracts.channels import Channel, Kind, wildcard
from tickmesh.publish import Publisher, now_us, traced

from .notifications import trade_notification

log = logging.getLogger(__name__)

DURABLE = "notifier-trades"
ACK_WAIT_S = 5.0  # was 30: a notification held by a vanished instance came that much later
FETCH_S = 1.0


async def subscribe(js: Any) -> Any:
    """The pull subscription; created at the stream's end the first time (no flood of old
    trades on a fresh deployment), then resumed where the last instance stopped."""
    config = ConsumerConfig(
        name=DURABLE,
        durable_name=DURABLE,
        filter_subject=wildcard(Kind.TRADES),
        deliver_policy=DeliverPolicy.NEW,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ACK_WAIT_S,
        max_deliver=-1,
    )
    # Create, or bring an existing consumer to this configuration (a deployment made with an
    # older one): pull_subscribe alone binds to what exists without updating it.
    await js.add_consumer(streams.USER_EVENTS, config=config)
    return await js.pull_subscribe(wildcard(Kind.TRADES), durable=DURABLE, stream=streams.USER_EVENTS)


async def handle(publisher: Publisher, msg: Any) -> None:
    if tracing.carries_trace(msg.headers):
        with traced(
            tracing.receive("notifier.trade", msg.headers, attributes={"messaging.destination.name": msg.subject})
        ):
            await _notify(publisher, msg)
    else:
        await _notify(publisher, msg)


async def _notify(publisher: Publisher, msg: Any) -> None:
    try:
        ex = messages.decode("execution", msg.data)
    except messages.ContractError as exc:
        log.warning("skipped an execution that breaks the contract: %s", exc, extra={"event": "notifier.bad_execution"})
        await msg.ack()
        return
    note = trade_notification(ex, now_us())
    if note is not None:
        await publisher.publish(Channel(Kind.NOTIFICATIONS, ex["user"]), note)
    await msg.ack()


async def run(publisher: Publisher, sub: Any, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            batch = await sub.fetch(64, timeout=FETCH_S)
        except TimeoutError:  # nothing new (nats-py raises its own subclass, or asyncio's)
            continue
        except Exception as exc:  # NATS reconnecting: try again shortly
            log.warning(
                "fetching executions failed: %s %s", type(exc).__name__, exc, extra={"event": "notifier.fetch_failed"}
            )
            await asyncio.sleep(0.5)
            continue
        metrics.messages_in("event", len(batch), sum(len(m.data) for m in batch))
        for msg in batch:
            try:
                await handle(publisher, msg)
            except Exception:
                log.exception("trade notification failed", extra={"event": "notifier.trade_failed"})
                await msg.nak(delay=1)
