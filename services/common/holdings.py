"""Accounts (cash and positions) as stored in the ``HOLDINGS_BUCKET`` KV bucket.

**Source of truth.** The KV bucket is the only record of what a user holds. Whoever executes
trades (the paper broker here; the platform's order system in production) applies each fill with
:func:`update_account`, a compare-and-set on the key's revision, so two concurrent fills for one
user never lose an update. Readers (portfolio-valuer, notifier) *watch* the bucket: they never
subscribe to executions to rebuild holdings, so there is exactly one way holdings change.

The key of a user's account is ``channels.encode_token(user)``; the value is JSON::

    {"cash": "100000.00",
     "positions": {"AAPL": {"quantity": "10", "avg_cost": "187.20"}},
     "applied": ["<exec_id>", ...]}

``applied`` remembers the last :data:`APPLIED_MEMORY` execution ids applied to the account, so
applying a fill is idempotent: a broker that crashed between updating holdings and recording the
order can apply the same fill again without counting it twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import orjson

from tickmesh.contracts.channels import decode_token, encode_token

APPLIED_MEMORY = 200
AVG_COST_QUANTUM = Decimal("0.0000000001")  # ten places: exact enough, and within the wire's 18


class HoldingsError(Exception):
    """A fill the account cannot take. ``code`` is the stable rejection code (codes.toml)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Position:
    quantity: Decimal
    avg_cost: Decimal


@dataclass(frozen=True, slots=True)
class Account:
    cash: Decimal
    positions: dict[str, Position] = field(default_factory=dict)
    applied: tuple[str, ...] = ()


def account_key(user: str) -> str:
    """The KV key of ``user``'s account."""
    return encode_token(user)


def user_of_key(key: str) -> str:
    return decode_token(key)


def encode_account(acct: Account) -> bytes:
    return orjson.dumps(
        {
            "cash": format(acct.cash, "f"),
            "positions": {
                s: {"quantity": format(p.quantity, "f"), "avg_cost": format(p.avg_cost, "f")}
                for s, p in sorted(acct.positions.items())
            },
            "applied": list(acct.applied),
        }
    )


def decode_account(data: bytes) -> Account:
    obj = orjson.loads(data)
    return Account(
        cash=Decimal(obj["cash"]),
        positions={
            s: Position(Decimal(p["quantity"]), Decimal(p["avg_cost"])) for s, p in obj.get("positions", {}).items()
        },
        applied=tuple(obj.get("applied", ())),
    )


def apply_fill(acct: Account, *, exec_id: str, side: str, symbol: str, quantity: Decimal, price: Decimal) -> Account:
    """The account after a fill; the same ``exec_id`` applied twice changes nothing.

    A buy needs ``quantity * price`` of cash (603); a sell needs the units (604): paper accounts
    neither borrow nor go short. A buy's average cost is the quantity-weighted mean (rounded to
    :data:`AVG_COST_QUANTUM`); a sell leaves it unchanged and a position sold to zero disappears.
    """
    if exec_id in acct.applied:
        return acct
    notional = quantity * price
    positions = dict(acct.positions)
    held = positions.get(symbol)
    if side == "buy":
        if notional > acct.cash:
            raise HoldingsError(603, "not enough cash")
        cash = acct.cash - notional
        if held is None:
            positions[symbol] = Position(quantity, price)
        else:
            total = held.quantity + quantity
            avg = ((held.quantity * held.avg_cost + notional) / total).quantize(AVG_COST_QUANTUM, ROUND_HALF_EVEN)
            positions[symbol] = Position(total, avg.normalize())  # normalize: no trailing zeros
    else:
        if held is None or held.quantity < quantity:
            raise HoldingsError(604, "not enough units held")
        cash = acct.cash + notional
        left = held.quantity - quantity
        if left == 0:
            del positions[symbol]
        else:
            positions[symbol] = replace(held, quantity=left)
    return Account(cash, positions, (acct.applied + (exec_id,))[-APPLIED_MEMORY:])


async def update_account(kv: Any, user: str, change: Callable[[Account], Account], *, attempts: int = 50) -> Account:
    """Read ``user``'s account, apply ``change`` and write it back only if nobody else wrote in
    between (KV revision compare-and-set); on a conflict, read again and retry.

    ``change`` must be pure (it may run several times) and may raise to abort. A missing account
    is an empty one (no cash). Returns the stored account.
    """
    from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

    key = account_key(user)
    for _ in range(attempts):
        try:
            entry = await kv.get(key)
            current, revision = decode_account(entry.value), entry.revision
        except KeyNotFoundError:  # also KeyDeletedError
            current, revision = Account(Decimal(0)), None
        updated = change(current)
        if updated is current:
            return current
        try:
            if revision is None:
                await kv.create(key, encode_account(updated))
            else:
                await kv.update(key, encode_account(updated), last=revision)
            return updated
        except KeyWrongLastSequenceError:
            continue
    raise RuntimeError(f"holdings of one account kept changing under {attempts} attempts")


async def watch_accounts(kv: Any, on_change: Callable[[str, Account | None], None], ready: Any = None) -> None:
    """Follow every account in the bucket until cancelled: ``on_change(user, account)`` for each
    stored account, then for each change; ``account`` is None when the key was deleted.
    ``ready`` (an ``asyncio.Event``), when given, is set once the stored accounts were replayed.
    """
    from .buckets import follow

    def decode(key: str, value: bytes | None) -> tuple[str, Account | None]:
        return user_of_key(key), None if value is None else decode_account(value)

    await follow(
        kv, decode, lambda item, initial: on_change(*item), ready=ready, what="account", event="holdings.bad_entry"
    )
