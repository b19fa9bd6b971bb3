"""``tickmesh service notifier``: trade notifications, price alerts and market news.

* Executions (durable consumer, see ``trades``) become notifications on the user's
  ``notifications`` channel.
* ``alert.create`` / ``alert.list`` / ``alert.delete`` manage rules in ``ALERTS_BUCKET``; a rule
  fires once, as a notification and an ``alert`` event (see ``alerting``).
* The configured news provider's stories go out on ``news``; a story naming a symbol a user holds
  also notifies that user (``NOTIFIER_NEWS_NOTIFY_HOLDERS``), holdings being read from the
  holdings bucket.

Every user message is a JetStream publish, so a user who is offline gets it on return.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from tickmesh import streams, tracing
from tickmesh.contracts.channels import Channel, Kind, decode_token
from tickmesh.publish import Publisher, now_us, traced
from tickmesh.services.common.buckets import follow
from tickmesh.services.common.holdings import watch_accounts
from tickmesh.services.common.prices import PriceBook, follow_prices
from tickmesh.services.runner import run_service, serve_commands

from . import trades
from .alerting import Alerts
from .news import HolderIndex, NewsProvider, ReplayNews, SyntheticNews
from .notifications import news_notification
from .rules import decode_rules
from .settings import NotifierSettings

log = logging.getLogger(__name__)


def make_provider(settings: NotifierSettings) -> NewsProvider | None:
    if settings.news_provider == "synthetic":
        return SyntheticNews(rate_per_min=settings.news_rate, seed=settings.news_seed or None)
    if settings.news_provider == "replay":
        return ReplayNews(settings.news_file, rate_per_min=settings.news_rate, loop=settings.news_loop)
    return None


async def publish_story(publisher: Publisher, story: dict[str, Any], holders: HolderIndex | None) -> None:
    """Publish ``story`` on ``news`` and, when ``holders`` is given, notify each holder once."""
    await publisher.publish(Channel(Kind.NEWS), story)
    if holders is None:
        return
    for user, symbol in holders.holders_of(story.get("symbols", [])).items():
        note = news_notification(user, story, symbol, now_us())
        await publisher.publish(Channel(Kind.NOTIFICATIONS, user), note)


async def run_news(
    provider: NewsProvider, publisher: Publisher, holders: HolderIndex | None, stop: asyncio.Event
) -> None:
    """Pace ``provider``'s stories until it has no more or ``stop`` is set."""
    while not stop.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=provider.interval())
        if stop.is_set():
            return
        story = provider.next_story(now_us())
        if story is None:
            log.info("news provider %s has no more stories", provider.name, extra={"event": "notifier.news_done"})
            return
        try:
            # A story enters tickmesh here: sampled at the head ratio, like a tick.
            with traced(
                tracing.begin("notifier.news", kind=tracing.PRODUCER, attributes={"tickmesh.story_id": story["id"]})
            ):
                await publish_story(publisher, story, holders)
        except Exception:
            log.exception("publishing a story failed", extra={"event": "notifier.news_failed"})


async def follow_rules(kv: Any, alerts: Alerts) -> None:
    def decode(key: str, value: bytes | None):
        return decode_token(key), [] if value is None else decode_rules(value)

    await follow(
        kv, decode, lambda item, initial: alerts.on_stored(*item), what="set of alert rules", event="notifier.bad_rules"
    )


async def serve(settings: NotifierSettings, nc, stop: asyncio.Event) -> None:
    js = nc.jetstream()
    await streams.ensure(js)
    prices = PriceBook()
    publisher = Publisher(nc)
    alerts = Alerts(
        publisher=publisher, kv=await js.key_value(streams.ALERTS_BUCKET), prices=prices, max_rules=settings.max_alerts
    )
    holders = HolderIndex() if settings.notify_holders else None
    background = [asyncio.ensure_future(follow_rules(alerts.kv, alerts))]
    if holders is not None:
        holdings_kv = await js.key_value(streams.HOLDINGS_BUCKET)
        loaded = asyncio.Event()
        watch = asyncio.ensure_future(watch_accounts(holdings_kv, holders.set_account, loaded))
        background.append(watch)
        # Stories wait until the stored holdings are known, so early ones reach their holders.
        await asyncio.wait([asyncio.ensure_future(loaded.wait()), watch], return_when=asyncio.FIRST_COMPLETED)
    ticks = await follow_prices(nc, js, prices, alerts.on_price)
    trade_sub = await trades.subscribe(js)
    trade_task = asyncio.ensure_future(trades.run(publisher, trade_sub, stop))
    background.append(trade_task)
    essential = list(background)  # the news task may end (a replay that ran out); these may not
    provider = make_provider(settings)
    if provider is not None:
        background.append(asyncio.ensure_future(run_news(provider, publisher, holders, stop)))
    subs = await serve_commands(
        nc, "notifier", {"alert.create": alerts.create, "alert.list": alerts.list, "alert.delete": alerts.delete}
    )
    log.info("notifier running: news=%s", settings.news_provider, extra={"event": "notifier.started"})
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([stopper, *essential], return_when=asyncio.FIRST_COMPLETED)
        for task in essential:
            if task.done() and not task.cancelled() and task.exception() is not None and not stop.is_set():
                raise task.exception()  # a watch or the consumer died: crash, so we are restarted
    finally:
        stopper.cancel()
        for sub in [*subs, ticks]:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        await alerts.drain()
        # The executions loop ends by itself within one fetch once stop is set: its pull request
        # then runs out on the server rather than lingering for a message no one will take.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(trade_task), trades.FETCH_S + 1.0)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        with contextlib.suppress(Exception):
            await trade_sub.unsubscribe()
        log.info("notifier stopped", extra={"event": "notifier.stopped"})


SETTINGS = NotifierSettings


def main() -> None:
    run_service("notifier", NotifierSettings, serve)
