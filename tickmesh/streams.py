"""JetStream streams and KV buckets: declared once, created or updated idempotently at start-up.

Every process that relies on persistence calls :func:`ensure` when it starts (services before
publishing, edges before recovering), so a fresh NATS is configured by whoever comes first and a
changed retention setting is applied on the next start. Retention is configurable per channel
class (``tickmesh settings`` lists the variables).

Which channels persist how:

* ``TM_TICKS`` (prices, a state channel): the last ``ticks_per_symbol`` ticks per symbol for
  ``ticks_max_age`` seconds; the newest one per subject is the snapshot a subscriber gets first.
* ``TM_USER_STATE`` (portfolio, a state channel): the latest valuation per user.
* ``TM_USER_EVENTS`` (trades, notifications, alerts): every event, for ``user_events_max_age``
  seconds, with a duplicate window so that a publisher's retry is stored once.
* ``TM_ANNOUNCEMENTS``: the last ``announcements_max`` announcements.
* ``TM_NEWS``: stories for ``news_max_age`` seconds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from nats.js.api import DiscardPolicy, KeyValueConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import BadRequestError, NotFoundError

from tickmesh.config import setting

log = logging.getLogger(__name__)

TICKS = "TM_TICKS"
USER_STATE = "TM_USER_STATE"
USER_EVENTS = "TM_USER_EVENTS"
ANNOUNCEMENTS = "TM_ANNOUNCEMENTS"
NEWS = "TM_NEWS"

# KV buckets (names are NATS bucket names; keys are escaped with channels.encode_token).
HOLDINGS_BUCKET = "tm_holdings"
ALERTS_BUCKET = "tm_alerts"
ORDERS_BUCKET = "tm_orders"
COMMAND_REPLIES_BUCKET = "tm_cmd_replies"  # first reply per (user, command key), for retries
TICKETS_BUCKET = "tm_tickets"  # SSE/polling tickets already used to start a stream


@dataclass(frozen=True)
class Retention:
    ticks_max_age: float = setting("TM_RETAIN_TICKS_S", 21600.0, "Seconds prices are kept (default 6 h)")
    ticks_per_symbol: int = setting("TM_RETAIN_TICKS_PER_SYMBOL", 1000, "Ticks kept per symbol at most")
    user_events_max_age: float = setting("TM_RETAIN_USER_EVENTS_S", 604800.0,
                                         "Seconds trades, notifications and alerts are kept (default 7 days)")
    announcements_max: int = setting("TM_RETAIN_ANNOUNCEMENTS", 100, "Announcements kept (the last N)")
    news_max_age: float = setting("TM_RETAIN_NEWS_S", 86400.0, "Seconds news stories are kept (default 1 day)")
    duplicate_window: float = setting("TM_DUPLICATE_WINDOW_S", 120.0,
                                      "Seconds within which a re-published event id is stored once")
    command_replies_ttl: float = setting("EDGE_COMMAND_DEDUPE_S", 600.0,
                                         "Seconds a command key's first reply is kept for retries")
    tickets_ttl: float = setting("EDGE_TICKET_RESUME_S", 300.0, "Seconds a used ticket may resume its stream")


def stream_configs(r: Retention) -> list[StreamConfig]:
    def cfg(name: str, subjects: list[str], **kw) -> StreamConfig:
        return StreamConfig(name=name, subjects=subjects, storage=StorageType.FILE,
                            retention=RetentionPolicy.LIMITS, discard=DiscardPolicy.OLD,
                            allow_direct=True, duplicate_window=r.duplicate_window, **kw)

    return [
        cfg(TICKS, ["tm.tick.*"], max_age=r.ticks_max_age, max_msgs_per_subject=r.ticks_per_symbol),
        cfg(USER_STATE, ["tm.user.*.portfolio"], max_msgs_per_subject=1),
        cfg(USER_EVENTS, ["tm.user.*.trades", "tm.user.*.notifications", "tm.user.*.alerts"],
            max_age=r.user_events_max_age),
        cfg(ANNOUNCEMENTS, ["tm.announcements"], max_msgs=r.announcements_max),
        cfg(NEWS, ["tm.news"], max_age=r.news_max_age),
    ]


def kv_configs(r: Retention) -> list[KeyValueConfig]:
    return [
        KeyValueConfig(bucket=COMMAND_REPLIES_BUCKET, history=1, ttl=r.command_replies_ttl,
                       storage=StorageType.FILE),
        KeyValueConfig(bucket=TICKETS_BUCKET, history=1, ttl=r.tickets_ttl, storage=StorageType.FILE),
        KeyValueConfig(bucket=HOLDINGS_BUCKET, history=1, storage=StorageType.FILE),
        KeyValueConfig(bucket=ALERTS_BUCKET, history=1, storage=StorageType.FILE),
        KeyValueConfig(bucket=ORDERS_BUCKET, history=1, storage=StorageType.FILE),
    ]


async def ensure(js: JetStreamContext, retention: Retention | None = None) -> None:
    """Create every stream and bucket, or update it to the configured limits. Safe to run
    concurrently from several processes."""
    r = retention or Retention()
    for config in stream_configs(r):
        try:
            await js.add_stream(config)
        except BadRequestError:
            # Exists with other settings (or a concurrent creator won): bring it to ours.
            await js.update_stream(config)
    for kv in kv_configs(r):
        try:
            await js.key_value(kv.bucket)
        except NotFoundError:
            try:
                await js.create_key_value(kv)
            except BadRequestError:
                pass
    log.debug("jetstream streams and buckets ensured", extra={"event": "streams.ensured"})
