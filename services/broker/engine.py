"""The broker's asyncio adapter: moves orders through their states with KV and JetStream.

Guarantees:

* **Fills once.** A submit claims its order with a KV *create* of a key derived from
  (user, client_order_id): only one attempt, on any instance, wins; a retry reads the stored
  record and gets the original reply back.
* **Holdings are exact.** A fill is applied to the account with a compare-and-set on the key's
  revision, and remembered by execution id in the account, so a repeat never counts twice.
* **Events once.** Each execution is published (``tickmesh.publish``) with ``Nats-Msg-Id`` = ``exec_id``.
* **Interrupted work finishes.** The record says ``filling`` (with its price) before holdings
  change; whoever next sees it (a retried submit, a restarted broker) completes the same fill.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from decimal import Decimal
from typing import Any

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from tickmesh.contracts.channels import Channel, Kind
from tickmesh.contracts.codes import ErrorCode
from tickmesh.contracts.commands import CommandRequest
from tickmesh.contracts.instruments import instruments
from tickmesh.publish import Publisher, now_us
from tickmesh.services.common.holdings import (
    Account,
    HoldingsError,
    account_key,
    apply_fill,
    decode_account,
    update_account,
)
from tickmesh.services.common.prices import PriceBook
from tickmesh.services.runner import CommandError

from . import orders as o
from .book import RestingBook

log = logging.getLogger(__name__)


class Broker:
    def __init__(self, *, publisher: Publisher, orders_kv: Any, holdings_kv: Any, prices: PriceBook) -> None:
        self.publisher = publisher
        self.orders_kv = orders_kv
        self.holdings_kv = holdings_kv
        self.prices = prices
        self.book = RestingBook()
        self._tasks: set[asyncio.Task] = set()

    # --- commands --------------------------------------------------------------------------

    async def submit(self, req: CommandRequest) -> dict[str, Any]:
        data = req.data
        key = o.order_key(req.user, o.order_id_for(req.user, data["client_order_id"]))
        stored = await self._load(key)
        if stored is not None:
            return _answer(await self._advance(*stored))
        try:
            o.validate(data, instruments().get(data["symbol"]))
            price = self.prices.get(data["symbol"])
            order = o.new_order(req.user, data, market_price=price, now=now_us())
            check_price = Decimal(order.price or order.limit_price)  # type: ignore[arg-type]
            o.check_account(data, await self._account(req.user), check_price)
        except o.OrderRejected as exc:
            raise CommandError(exc.code, exc.reason) from None
        try:
            revision = await self.orders_kv.create(key, o.encode_order(order))
        except KeyWrongLastSequenceError:  # a concurrent retry claimed it first
            stored = await self._load(key)
            assert stored is not None
            return _answer(await self._advance(*stored))
        log.info(
            "order %s %s", order.order_id, order.status, extra={"event": "broker.order", "order_id": order.order_id}
        )
        return _answer(await self._advance(order, revision))

    async def cancel(self, req: CommandRequest) -> dict[str, Any]:
        order_id = req.data["order_id"]
        key = o.order_key(req.user, order_id)
        for _ in range(20):
            stored = await self._load(key)
            if stored is None:
                raise CommandError(ErrorCode.UNKNOWN_ORDER, "no such open order")
            order, revision = stored
            if order.status == "cancelled":
                return o.reply_data(order)
            if order.status != o.OPEN:
                raise CommandError(ErrorCode.UNKNOWN_ORDER, "no such open order")
            done = replace(order, status="cancelled", reason="cancelled by the user")
            done = replace(done, reply=o.reply_data(done))
            try:
                revision = await self.orders_kv.update(key, o.encode_order(done), last=revision)
            except KeyWrongLastSequenceError:
                continue  # filled or cancelled meanwhile: look again
            self.book.remove(order_id)
            await self._publish(done)
            return o.reply_data(done)
        raise CommandError(ErrorCode.INTERNAL, "order kept changing")

    # --- prices and the resting book -------------------------------------------------------

    def on_price(self, symbol: str, price: Decimal, ts: int) -> None:
        """Fill the resting orders ``price`` crosses (in tasks: this runs in a NATS callback)."""
        for order in self.book.crossing(symbol, price):
            task = asyncio.ensure_future(self._fill_resting(order, price))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def on_stored(self, order: o.Order, *, initial: bool) -> None:
        """Follow ``ORDERS_BUCKET`` (every instance sees every resting order); on start-up,
        finish fills that an earlier process left half done."""
        if order.status == o.OPEN and order.limit_price is not None:
            self.book.add(order)
            return
        self.book.remove(order.order_id)
        if initial and order.status == o.FILLING:
            task = asyncio.ensure_future(self._resume(o.order_key(order.user, order.order_id)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _fill_resting(self, order: o.Order, price: Decimal) -> None:
        key = o.order_key(order.user, order.order_id)
        try:
            stored = await self._load(key)
            if stored is None or stored[0].status != o.OPEN:
                return
            current, revision = stored
            filling = replace(current, status=o.FILLING, price=format(price, "f"))
            try:
                revision = await self.orders_kv.update(key, o.encode_order(filling), last=revision)
            except KeyWrongLastSequenceError:
                return  # cancelled, or another instance is filling it
            await self._advance(filling, revision)
        except Exception:
            log.exception(
                "resting order fill failed", extra={"event": "broker.fill_failed", "order_id": order.order_id}
            )

    async def _resume(self, key: str) -> None:
        try:
            stored = await self._load(key)
            if stored is not None:
                await self._advance(*stored)
        except Exception:
            log.exception("resuming a fill failed", extra={"event": "broker.resume_failed"})

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)

    # --- the state machine -----------------------------------------------------------------

    async def _advance(self, order: o.Order, revision: int) -> o.Order:
        """Take ``order`` to its next resting or final state; returns it with its reply set."""
        key = o.order_key(order.user, order.order_id)
        for _ in range(20):
            if order.reply is not None and (order.status in o.FINAL or order.status == o.OPEN):
                return order
            if order.status == o.OPEN:
                nxt = replace(order, reply=o.reply_data(order))
            elif order.status == o.FILLING:
                nxt = await self._apply_fill(order)
            else:  # a final state without a reply (only after a crash): give the current one
                nxt = replace(
                    order,
                    reply=o.reply_data(order)
                    if order.status != "rejected"
                    else {"code": order.code, "reason": order.reason},
                )
            await self._publish(nxt)  # before recording it: a repeat is absorbed by Nats-Msg-Id
            try:
                await self.orders_kv.update(key, o.encode_order(nxt), last=revision)
                if nxt.status == o.OPEN:
                    self.book.add(nxt)
                return nxt
            except KeyWrongLastSequenceError:
                stored = await self._load(key)
                assert stored is not None
                order, revision = stored
        raise CommandError(ErrorCode.INTERNAL, "order kept changing")

    async def _apply_fill(self, order: o.Order) -> o.Order:
        price = Decimal(order.price)  # type: ignore[arg-type]
        fill_id = o.exec_id(order, "filled")
        try:
            await update_account(
                self.holdings_kv,
                order.user,
                lambda acct: apply_fill(
                    acct,
                    exec_id=fill_id,
                    side=order.side,
                    symbol=order.symbol,
                    quantity=Decimal(order.quantity),
                    price=price,
                ),
            )
        except HoldingsError as exc:
            rejected = replace(order, status="rejected", price=None, code=exc.code, reason=exc.reason)
            return replace(rejected, reply=order.reply or {"code": exc.code, "reason": exc.reason})
        filled = replace(order, status="filled")
        # A resting order keeps its first reply ("accepted"): a retried submit gets that back.
        return replace(filled, reply=order.reply or o.reply_data(filled))

    async def _publish(self, order: o.Order) -> None:
        await self.publisher.publish(
            Channel(Kind.TRADES, order.user), o.execution(order, now_us()), id=o.exec_id(order, order.status)
        )

    # --- storage ---------------------------------------------------------------------------

    async def _load(self, key: str) -> tuple[o.Order, int] | None:
        try:
            entry = await self.orders_kv.get(key)
        except KeyNotFoundError:
            return None
        return o.decode_order(entry.value), entry.revision

    async def _account(self, user: str) -> Account:
        try:
            return decode_account((await self.holdings_kv.get(account_key(user))).value)
        except KeyNotFoundError:
            return Account(Decimal(0))


def _answer(order: o.Order) -> dict[str, Any]:
    """The stored reply of ``order`` for the command: its data, or its rejection raised."""
    reply = order.reply or o.reply_data(order)
    if "code" in reply:
        raise CommandError(int(reply["code"]), str(reply.get("reason", "")))
    return reply
