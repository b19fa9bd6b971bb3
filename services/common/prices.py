"""The latest price of every instrument, kept from the tick stream.

:class:`PriceBook` is the sans-I/O part: it keeps, per symbol, the newest price by provider time,
so a stale snapshot read after a live tick can never move a price backwards. :func:`follow_prices`
is the asyncio adapter: it subscribes to every tick subject first and then reads the newest
stored tick of each instrument from the ``TM_TICKS`` stream, so a service that starts in a quiet
market still knows the last prices, and no tick published in between is lost.

A tick that carries a trace (market-feed sampled it) is handled inside ``prices.tick``, a span
continuing that trace, so whatever ``on_price`` publishes or starts (a fill, an alert, a
revaluation) belongs to the tick's trace; an untraced tick pays one header lookup for this.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from tickmesh import metrics, tracing
from tickmesh.contracts import messages
from tickmesh.contracts.channels import TICK_WILDCARD, tick_subject
from tickmesh.contracts.instruments import instruments
from tickmesh.publish import traced
from tickmesh.streams import TICKS

log = logging.getLogger(__name__)

OnPrice = Callable[[str, Decimal, int], None]


class PriceBook:
    """Last price and its provider time (``ts``, microseconds) per symbol."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[Decimal, int]] = {}

    def update(self, symbol: str, price: Decimal, ts: int) -> bool:
        """Record ``price`` unless a newer one is known; True when it was recorded."""
        known = self._last.get(symbol)
        if known is not None and known[1] > ts:
            return False
        self._last[symbol] = (price, ts)
        return True

    def get(self, symbol: str) -> Decimal | None:
        known = self._last.get(symbol)
        return known[0] if known else None

    def __contains__(self, symbol: str) -> bool:
        return symbol in self._last


def parse_tick(data: bytes) -> tuple[str, Decimal, int] | None:
    """``(symbol, last, ts)`` of a contract-valid tick, else None (logged, never raised)."""
    try:
        tick = messages.decode("tick", data)
    except messages.ContractError as exc:
        log.warning("ignored a tick that breaks the contract: %s", exc, extra={"event": "prices.invalid_tick"})
        return None
    return tick["symbol"], Decimal(tick["last"]), tick["ts"]


async def follow_prices(nc: Any, js: Any, book: PriceBook, on_price: OnPrice | None = None) -> Any:
    """Keep ``book`` current; call ``on_price(symbol, price, ts)`` for every price recorded.

    Returns the tick subscription (unsubscribe it to stop). ``on_price`` runs on the event loop
    and must not block.
    """

    def record(parsed: tuple[str, Decimal, int] | None) -> None:
        if parsed is not None and book.update(*parsed) and on_price is not None:
            on_price(*parsed)

    async def on_tick(msg: Any) -> None:
        headers = msg.headers
        if headers and tracing.TRACEPARENT in headers:
            with traced(
                tracing.receive("prices.tick", headers, attributes={"messaging.destination.name": msg.subject})
            ):
                record(parse_tick(msg.data))
        else:
            record(parse_tick(msg.data))
        metrics.messages_in("state", 1, len(msg.data))

    sub = await nc.subscribe(TICK_WILDCARD, cb=on_tick)
    await asyncio.gather(*(_load_last(js, sym, record) for sym in instruments()))
    return sub


async def _load_last(js: Any, symbol: str, record: Callable[[Any], None]) -> None:
    from nats.js.errors import NotFoundError

    try:
        raw = await js.get_last_msg(TICKS, tick_subject(symbol), direct=True)
    except NotFoundError:
        return
    except Exception as exc:  # a missing price is not fatal: it arrives with the next tick
        log.warning("could not read the last tick of %s: %s", symbol, exc, extra={"event": "prices.snapshot_failed"})
        return
    record(parse_tick(raw.data))
