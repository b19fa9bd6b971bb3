"""Resting limit orders by symbol: which ones a new price fills. Sans-I/O.

Every broker instance keeps the whole book (it follows ``ORDERS_BUCKET``), so whichever sees a
crossing tick tries to fill; the KV revision decides which attempt wins.
"""

from __future__ import annotations

from decimal import Decimal

from .orders import Order, crosses


class RestingBook:
    def __init__(self) -> None:
        self._by_symbol: dict[str, dict[str, Order]] = {}
        self._symbol_of: dict[str, str] = {}

    def add(self, order: Order) -> None:
        assert order.limit_price is not None
        self._by_symbol.setdefault(order.symbol, {})[order.order_id] = order
        self._symbol_of[order.order_id] = order.symbol

    def remove(self, order_id: str) -> None:
        symbol = self._symbol_of.pop(order_id, None)
        if symbol is not None:
            self._by_symbol[symbol].pop(order_id, None)

    def crossing(self, symbol: str, price: Decimal) -> list[Order]:
        """Remove and return the orders on ``symbol`` that ``price`` fills."""
        orders = self._by_symbol.get(symbol)
        if not orders:
            return []
        hit = [o for o in orders.values() if crosses(o.side, Decimal(o.limit_price), price)]  # type: ignore[arg-type]
        for o in hit:
            self.remove(o.order_id)
        return hit

    def __len__(self) -> int:
        return len(self._symbol_of)
