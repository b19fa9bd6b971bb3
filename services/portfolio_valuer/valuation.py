"""Incremental portfolio valuation: the sans-I/O core of portfolio-valuer.

State in (accounts, prices), messages out (``portfolio`` dicts); no I/O, no clock: times are
arguments.

**How a tick is applied.** An index maps each symbol to the holdings of it (one small object per
user and symbol). A price move ``dp`` changes each holder's position value, day change, and the
user's running totals by the same ``quantity * dp``: one multiplication and four additions per
holder, never a pass over the user's other positions nor over users who do not hold the symbol.
The day's opening price only changes once per symbol and UTC day; then the holders of that
symbol are recomputed from scratch. All arithmetic is ``Decimal`` in a wide context, so the
running sums equal what a full recomputation would give, to the last digit (a test checks it).

**Scale.** 10,000 users holding 20 symbols each is 200,000 holdings objects (roughly 60 MB of
Python objects). With the 49 listed instruments a symbol has about 4,000 holders, so a tick
costs about 4,000 Decimal updates: ``ops/bench/valuation.py`` measures the resulting ticks/s.
Building a ``portfolio`` message is O(positions of that user) and happens only at the publish
rate the throttle allows (``VALUER_MAX_HZ`` per user), not per tick.

**Day change.** A position's day change is ``quantity * (price - open)``, where ``open`` is the
first price seen on the current UTC day, or the instrument's reference price until the first
tick of a new day (the valuer's start counts as the start of the day). The portfolio's day change
is their sum; ``day_change_pct`` is relative to the opening value ``total_value - day_change``.
"""

from __future__ import annotations

import decimal
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Iterable, Mapping

from .holdings import Account

DAY_US = 86_400 * 1_000_000
PCT_QUANTUM = Decimal("0.01")
_WIRE_QUANTUM = Decimal(1).scaleb(-18)  # the wire's decimals carry at most 18 places
_CONTEXT = decimal.Context(prec=60, rounding=ROUND_HALF_EVEN)
_ZERO = Decimal(0)
_HUNDRED = Decimal(100)


def wire(d: Decimal) -> str:
    """``d`` as a contract decimal string: plain notation, at most 18 decimal places."""
    if d.as_tuple().exponent < -18:  # type: ignore[operator]
        d = d.quantize(_WIRE_QUANTUM, ROUND_HALF_EVEN, context=_CONTEXT)
    return format(d, "f")


class _Holding:
    __slots__ = ("book", "symbol", "quantity", "avg_cost", "value", "day_change")

    def __init__(self, book: "_Book", symbol: str, quantity: Decimal, avg_cost: Decimal) -> None:
        self.book = book
        self.symbol = symbol
        self.quantity = quantity
        self.avg_cost = avg_cost
        self.value = _ZERO
        self.day_change = _ZERO


class _Book:
    __slots__ = ("user", "cash", "holdings", "positions_value", "day_change")

    def __init__(self, user: str, cash: Decimal) -> None:
        self.user = user
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
        self._holders: dict[str, dict[str, _Holding]] = {s: {} for s in reference_prices}
        self._books: dict[str, _Book] = {}
        self._unknown: set[str] = set()

    # --- accounts --------------------------------------------------------------------------

    def set_account(self, user: str, account: Account) -> None:
        """Replace ``user``'s holdings (O(that user's positions)); the caller publishes after."""
        self.remove_account(user)
        book = self._books[user] = _Book(user, account.cash)
        with decimal.localcontext(_CONTEXT):
            for symbol, pos in account.positions.items():
                holders = self._holders.get(symbol)
                if holders is None:
                    self._unknown.add(symbol)
                    continue
                h = _Holding(book, symbol, pos.quantity, pos.avg_cost)
                h.value = pos.quantity * self._price[symbol]
                h.day_change = pos.quantity * (self._price[symbol] - self._open[symbol])
                book.holdings[symbol] = h
                book.positions_value += h.value
                book.day_change += h.day_change
                holders[user] = h

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
        """Apply a new price; returns the users whose valuation changed (a live view of the
        symbol's holders, or an empty tuple): O(holders of ``symbol``)."""
        holders = self._holders.get(symbol)
        if holders is None:
            return ()
        day = ts // DAY_US
        if day > self._open_day[symbol]:
            self._open_day[symbol] = day
            self._open[symbol] = price
            self._price[symbol] = price
            self._revalue(holders.values(), price, price)
            return holders.keys()
        old = self._price[symbol]
        if price == old:
            return ()
        self._price[symbol] = price
        with decimal.localcontext(_CONTEXT):
            dp = price - old
            for h in holders.values():
                dv = h.quantity * dp
                h.value += dv
                h.day_change += dv
                book = h.book
                book.positions_value += dv
                book.day_change += dv
        return holders.keys()

    def _revalue(self, holdings: Iterable[_Holding], price: Decimal, open_: Decimal) -> None:
        with decimal.localcontext(_CONTEXT):
            for h in holdings:
                value = h.quantity * price
                change = h.quantity * (price - open_)
                book = h.book
                book.positions_value += value - h.value
                book.day_change += change - h.day_change
                h.value, h.day_change = value, change

    def price(self, symbol: str) -> Decimal | None:
        return self._price.get(symbol)

    # --- messages --------------------------------------------------------------------------

    def totals(self, user: str) -> tuple[Decimal, Decimal, Decimal] | None:
        """``(total_value, positions_value, day_change)`` of ``user``, or None."""
        book = self._books.get(user)
        if book is None:
            return None
        return book.cash + book.positions_value, book.positions_value, book.day_change

    def portfolio(self, user: str, ts: int) -> dict[str, Any] | None:
        """The ``portfolio`` message of ``user`` (O(positions)), or None for an unknown user."""
        book = self._books.get(user)
        if book is None:
            return None
        with decimal.localcontext(_CONTEXT):
            total = book.cash + book.positions_value
            opening = total - book.day_change
            pct = (book.day_change / opening * _HUNDRED).quantize(PCT_QUANTUM) if opening else _ZERO.quantize(PCT_QUANTUM)
            positions = [
                {
                    "symbol": h.symbol,
                    "quantity": wire(h.quantity),
                    "avg_cost": wire(h.avg_cost),
                    "price": wire(self._price[h.symbol]),
                    "value": wire(h.value),
                    "day_change": wire(h.day_change),
                    "unrealized_pnl": wire(h.value - h.quantity * h.avg_cost),
                }
                for h in sorted(book.holdings.values(), key=lambda h: h.symbol)
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
