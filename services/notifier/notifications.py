"""Notification messages: what each cause (a trade, a fired alert, a story) tells its user.

Pure functions. A notification's id is derived from its cause (``stable_id``), and it is
published with that id as ``Nats-Msg-Id``: handling the same execution twice (a redelivery, two
notifier instances) stores one notification.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tickmesh.publish import stable_id

_VERB = {"buy": "Bought", "sell": "Sold"}


def trade_notification(ex: dict[str, Any], now: int) -> dict[str, Any] | None:
    """The notification for an ``execution``: filled, rejected or cancelled (accepted: none,
    the trades channel shows it)."""
    status = ex["status"]
    base = {
        "id": stable_id("n", ex["exec_id"]),
        "user": ex["user"],
        "kind": "trade",
        "symbol": ex["symbol"],
        "ref": ex["exec_id"],
        "ts": now,
    }
    qty = _qty(ex["quantity"])
    if status == "filled":
        title = f"{_VERB[ex['side']]} {qty} {ex['symbol']} at {ex['price']}"
        return {**base, "severity": "info", "title": title}
    if status == "rejected":
        title = f"Order to {ex['side']} {qty} {ex['symbol']} rejected"
        return {**base, "severity": "warning", "title": title[:120], "body": ex.get("reason", "")[:2000] or None}
    if status == "cancelled":
        return {**base, "severity": "info", "title": f"Cancelled order to {ex['side']} {qty} {ex['symbol']}"[:120]}
    return None


def alert_notification(user: str, rule: dict[str, Any], price: str, now: int) -> dict[str, Any]:
    sym, th = rule["symbol"], rule["threshold"]
    if rule["condition"] == "above":
        title = f"{sym} rose to {price} (alert above {th})"
    elif rule["condition"] == "below":
        title = f"{sym} fell to {price} (alert below {th})"
    else:
        title = f"{sym} moved {th}% or more: now {price} (from {rule.get('reference_price', '?')})"
    return {
        "id": stable_id("n", rule["id"]),
        "user": user,
        "kind": "alert",
        "severity": "warning",
        "title": title[:120],
        "symbol": sym,
        "ref": rule["id"],
        "ts": now,
    }


def news_notification(user: str, story: dict[str, Any], symbol: str, now: int) -> dict[str, Any]:
    return {
        "id": stable_id("n", story["id"], user),
        "user": user,
        "kind": "news",
        "severity": "info",
        "title": f"News on {symbol}: {story['headline']}"[:120],
        "symbol": symbol,
        "ref": story["id"],
        "ts": now,
    }


def _qty(q: str) -> str:
    d = Decimal(q)
    return format(d.normalize(), "f") if d == d.to_integral() else q
