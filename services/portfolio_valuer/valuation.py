"""Incremental portfolio valuation: the sans-I/O core of portfolio-valuer.

State in (accounts, prices), messages out (``portfolio`` dicts); no I/O, no clock: times are
arguments.

**How a tick is applied.** An index maps each symbol to its holders. A tick records the new price
(O(1)) and hands back the holders of that symbol as the users whose valuation changed: a live
view the caller merges into its set of pending users in C (``Throttle.mark_many``), so the
per-tick cost is one set operation over the symbol's holders, never a pass over other users.
Each holding remembers the price and opening price its value was computed at; when a user's
valuation is read (:meth:`Valuer.portfolio`, :meth:`Valuer.totals`), only the holdings whose
symbol moved since are brought up to date, and the user's running totals are adjusted by their
deltas. That work is O(positions of one user) and happens at the publish rate the throttle allows
(``VALUER_MAX_HZ`` per user), not per tick: a user whose symbols tick 50 times in one publish
interval is revalued once. All arithmetic is ``Decimal`` in a wide context, so the running sums
equal a full recomputation to the last digit (a test checks it).

**Scale.** 10,000 users holding 20 symbols each is 200,000 holding objects (roughly 60 MB of
Python objects). With the ~50 listed instruments a symbol has about 4,000 holders, so a tick
costs one set operation over ~4,000 keys; ``ops/bench/valuation.py`` measures ticks/s and the
rate at which portfolio messages are built. At that size the limit is the second figure: every
user at ``VALUER_MAX_HZ`` = 4 would need 40,000 messages/s, more than one process builds; the
throttle then conflates (each user gets its latest valuation, less often), and the way out is
to shard users across valuer instances (``VALUER_SHARDS``).

**Day change.** A position's day change is ``quantity * (price - open)``, where ``open`` is the
first price seen on the current UTC day, or the instrument's reference price until the first
tick of a new day (the valuer's start counts as the start of the day). The portfolio's day change
is their sum; ``day_change_pct`` is relative to the opening value ``total_value - day_change``.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from tickmesh.services.common.holdings import Account

DAY_US = 86_400 * 1_000_000
PCT_QUANTUM = Decimal("0.01")
_WIRE_QUANTUM = Decimal(1).scaleb(-18)  # the wire's decimals carry at most 18 places
_CONTEXT = decimal.Context(prec=60, rounding=ROUND_HALF_EVEN)
_ZERO = Decimal(0)
_HUNDRED = Decimal(100)


def wire(d: Decimal) -> str:
    """``d`` as a contract decimal string: plain notation, at most 18 decimal places."""
    text = format(d, "f")
    dot = text.find(".")
    if dot >= 0 and len(text) - dot - 1 > 18:
        text = format(d.quantize(_WIRE_QUANTUM, ROUND_HALF_EVEN, context=_CONTEXT), "f")
    return text


class _Holding:
    __slots__ = ("symbol", "quantity", "avg_cost", "price", "open", "value", "day_change")

    def __init__(self, symbol: str, quantity: Decimal, avg_cost: Decimal) -> None:
        self.symbol = symbol
        self.quantity = quantity
        self.avg_cost = avg_cost
        self.price: Decimal | None = None  # the price ``value`` was computed at
        self.open: Decimal | None = None  # the opening price ``day_change`` was computed from
        self.value = _ZERO
        self.day_change = _ZERO


class _Book:
    __slots__ = ("cash", "holdings", "positions_value", "day_change")

    def __init__(self, cash: Decimal) -> None:
        self.cash = cash
        self.holdings: dict[str, _Holding] = {}
        self.positions_value = _ZERO
        self.day_change = _ZERO


class Valuer:
    """Every user's valuation, kept current tick by tick.

    ``reference_prices`` gives each known symbol's price (and opening price) before its first
    tick; ``start_ts`` (microseconds) fixes the UTC day the valuer starts in. Positions in a
    symbol without a reference price are ignored (and listed by :meth:`unknown_symbols`).
    """

    def __init__(self, *, reference_prices: Mapping[str, Decimal], start_ts: int) -> None:
        self._price: dict[str, Decimal] = dict(reference_prices)
        self._open: dict[str, Decimal] = dict(reference_prices)
        self._open_day: dict[str, int] = {s: start_ts // DAY_US for s in reference_prices}
        self._holders: dict[str, dict[str, _Book]] = {s: {} for s in reference_prices}
        self._books: dict[str, _Book] = {}
        self._unknown: set[str] = set()

    # --- accounts --------------------------------------------------------------------------

    def set_account(self, user: str, account: Account) -> None:
        """Replace ``user``'s holdings (O(that user's positions)); the caller publishes after."""
        self.remove_account(user)
        book = self._books[user] = _Book(account.cash)
        for symbol, pos in account.positions.items():
            holders = self._holders.get(symbol)
            if holders is None:
                self._unknown.add(symbol)
                continue
            book.holdings[symbol] = _Holding(symbol, pos.quantity, pos.avg_cost)
            holders[user] = book
        self._refresh(book)

    def remove_account(self, user: str) -> bool:
        book = self._books.pop(user, None)
        if book is None:
            return False
        for symbol in book.holdings:
            self._holders[symbol].pop(user, None)
        return True

    def users(self) -> Iterable[str]:
        return self._books.keys()

    def holders(self, symbol: str) -> Iterable[str]:
        """Users holding ``symbol`` (a live view: do not keep it across calls that change state)."""
        return self._holders.get(symbol, {}).keys()

    def unknown_symbols(self) -> set[str]:
        return set(self._unknown)

    # --- prices ----------------------------------------------------------------------------

    def on_price(self, symbol: str, price: Decimal, ts: int) -> Iterable[str]:
        """Record a new price (O(1)); returns the users whose valuation changed: a live view of
        the symbol's holders (merge it before the next call), or an empty tuple."""
        holders = self._holders.get(symbol)
        if holders is None:
            return ()
        day = ts // DAY_US
        if day > self._open_day[symbol]:
            self._open_day[symbol] = day
            self._open[symbol] = price
        elif price == self._price[symbol]:
            return ()
        self._price[symbol] = price
        return holders.keys()

    def _refresh(self, book: _Book) -> None:
        """Bring ``book``'s holdings whose symbol moved up to date, and its totals by the deltas."""
        prices, opens = self._price, self._open
        with decimal.localcontext(_CONTEXT):
            for h in book.holdings.values():
                price, open_ = prices[h.symbol], opens[h.symbol]
                if price is h.price and open_ is h.open:
                    continue
                value = h.quantity * price
                change = h.quantity * (price - open_)
                book.positions_value += value - h.value
                book.day_change += change - h.day_change
                h.value, h.day_change, h.price, h.open = value, change, price, open_

    def price(self, symbol: str) -> Decimal | None:
        return self._price.get(symbol)

    # --- messages --------------------------------------------------------------------------

    def totals(self, user: str) -> tuple[Decimal, Decimal, Decimal] | None:
        """``(total_value, positions_value, day_change)`` of ``user``, or None."""
        book = self._books.get(user)
        if book is None:
            return None
        self._refresh(book)
        with decimal.localcontext(_CONTEXT):
            return book.cash + book.positions_value, book.positions_value, book.day_change

    def portfolio(self, user: str, ts: int) -> dict[str, Any] | None:
        """The ``portfolio`` message of ``user`` (O(positions)), or None for an unknown user."""
        book = self._books.get(user)
        if book is None:
            return None
        self._refresh(book)
        with decimal.localcontext(_CONTEXT):
            total = book.cash + book.positions_value
            opening = total - book.day_change
            pct = (
                (book.day_change / opening * _HUNDRED).quantize(PCT_QUANTUM) if opening else _ZERO.quantize(PCT_QUANTUM)
            )
            positions = [
                {
                    "symbol": h.symbol,
                    "quantity": wire(h.quantity),
                    "avg_cost": wire(h.avg_cost),
                    "price": wire(h.price),  # type: ignore[arg-type]
                    "value": wire(h.value),
                    "day_change": wire(h.day_change),
                    "unrealized_pnl": wire(h.value - h.quantity * h.avg_cost),
                }
                for _, h in sorted(book.holdings.items())
            ]
        return {
            "user": user,
            "cash": wire(book.cash),
            "positions_value": wire(book.positions_value),
            "total_value": wire(total),
            "day_change": wire(book.day_change),
            "day_change_pct": wire(pct),
            "positions": positions,
            "ts": ts,
        }
