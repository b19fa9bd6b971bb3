"""Orders: validation, the stored record, its state machine and the messages it produces.

Sans-I/O: prices, accounts and times are arguments. An order moves through::

    accepted ──(price crosses)──► filling ──► filled
       │                             └──────► rejected (the account can no longer take it)
       └──(order.cancel)──► cancelled
    (market, or a limit that crosses on arrival) ──► filling ──► filled / rejected

``filling`` records the fill price *before* holdings change, so an interrupted fill is finished
later at the same price (holdings and the event stream both ignore the repeat: see
:func:`exec_id`). The order id is derived from (user, client_order_id): a retried submit names the
same order, which is how "fills once" is enforced (a KV create that only one attempt wins).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from decimal import Decimal
from typing import Any

import orjson

from tickmesh.contracts.channels import encode_token
from tickmesh.contracts.codes import ErrorCode
from tickmesh.contracts.instruments import Instrument
from tickmesh.publish import stable_id
from tickmesh.services.common.holdings import Account

QTY_QUANTUM = Decimal("0.00000001")  # quantities carry at most 8 decimal places (the "lot")

OPEN = "accepted"
FILLING = "filling"
FINAL = frozenset({"filled", "rejected", "cancelled"})


class OrderRejected(Exception):
    """An order refused with a stable code (600-606)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = int(code)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Order:
    order_id: str
    user: str
    client_order_id: str
    symbol: str
    side: str
    type: str
    quantity: str
    status: str
    ts: int
    limit_price: str | None = None
    price: str | None = None
    code: int | None = None
    reason: str | None = None
    reply: dict[str, Any] | None = None  # the first answer given, returned again on a retry


def order_id_for(user: str, client_order_id: str) -> str:
    return stable_id("ord", user, client_order_id)


def order_key(user: str, order_id: str) -> str:
    """KV key in ``ORDERS_BUCKET``: one per order, grouped by user."""
    return f"{encode_token(user)}.{encode_token(order_id)}"


def exec_id(order: Order, status: str) -> str:
    """The id of ``order``'s event for ``status``: at most one event per order and status."""
    return f"{order.order_id}-{status[0].upper()}"


def encode_order(order: Order) -> bytes:
    return orjson.dumps({k: v for k, v in asdict(order).items() if v is not None})


def decode_order(data: bytes) -> Order:
    return Order(**orjson.loads(data))


def validate(data: dict[str, Any], inst: Instrument | None) -> None:
    """Check an ``order`` (already schema-valid) against the instrument; raise OrderRejected."""
    if inst is None:
        raise OrderRejected(ErrorCode.UNKNOWN_SYMBOL, "unknown symbol")
    qty = Decimal(data["quantity"])
    if qty <= 0 or qty != qty.quantize(QTY_QUANTUM):
        raise OrderRejected(ErrorCode.INVALID_QUANTITY, "quantity must be positive with at most 8 decimal places")
    limit = data.get("limit_price")
    if data["type"] == "market":
        if limit is not None:
            raise OrderRejected(ErrorCode.INVALID_PRICE, "a market order takes no limit_price")
        return
    if limit is None:
        raise OrderRejected(ErrorCode.INVALID_PRICE, "a limit order needs limit_price")
    price = Decimal(limit)
    if price <= 0 or price % inst.tick_size != 0:
        raise OrderRejected(ErrorCode.INVALID_PRICE, f"limit_price must be a positive multiple of {inst.tick_size}")


def crosses(side: str, limit: Decimal, price: Decimal) -> bool:
    """Whether a limit order on ``side`` fills at market ``price``."""
    return price <= limit if side == "buy" else price >= limit


def check_account(data: dict[str, Any], account: Account, price: Decimal) -> None:
    """Refuse what the account cannot pay for (603) or deliver (604) at ``price``."""
    qty = Decimal(data["quantity"])
    if data["side"] == "buy":
        if qty * price > account.cash:
            raise OrderRejected(ErrorCode.INSUFFICIENT_FUNDS, "not enough cash")
    else:
        held = account.positions.get(data["symbol"])
        if held is None or held.quantity < qty:
            raise OrderRejected(ErrorCode.INSUFFICIENT_POSITION, "not enough units held")


def new_order(user: str, data: dict[str, Any], *, market_price: Decimal | None, now: int) -> Order:
    """The record of a validated order: ``filling`` at ``market_price`` for a market order or a
    limit that crosses on arrival, else ``accepted`` (resting). A market order needs a price."""
    limit = data.get("limit_price")
    base = Order(
        order_id_for(user, data["client_order_id"]),
        user,
        data["client_order_id"],
        data["symbol"],
        data["side"],
        data["type"],
        data["quantity"],
        OPEN,
        now,
        limit_price=limit,
    )
    if market_price is None:
        if limit is None:
            raise OrderRejected(ErrorCode.NO_PRICE, "no current price for the symbol yet")
        return base
    if limit is None or crosses(data["side"], Decimal(limit), market_price):
        return replace(base, status=FILLING, price=format(market_price, "f"))
    return base


def reply_data(order: Order) -> dict[str, Any]:
    """The ``order.submit`` / ``order.cancel`` reply for ``order``'s current state."""
    out: dict[str, Any] = {"order_id": order.order_id, "status": order.status}
    if order.status == "filled" and order.price is not None:
        out["price"] = order.price
    return out


def execution(order: Order, now: int) -> dict[str, Any]:
    """The ``execution`` event for ``order``'s current (published) state."""
    msg: dict[str, Any] = {
        "exec_id": exec_id(order, order.status),
        "order_id": order.order_id,
        "client_order_id": order.client_order_id,
        "user": order.user,
        "symbol": order.symbol,
        "side": order.side,
        "order_type": order.type,
        "status": order.status,
        "quantity": order.quantity,
        "ts": now,
    }
    if order.status == "filled":
        msg["price"] = order.price
    if order.limit_price is not None:
        msg["limit_price"] = order.limit_price
    if order.code is not None:
        msg["code"] = order.code
    if order.reason:
        msg["reason"] = order.reason[:200]
    return msg
