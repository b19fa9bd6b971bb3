"""Price-alert rules: creation checks, when a rule fires, and the index of live rules. Sans-I/O.

Rules are stored per user in ``ALERTS_BUCKET`` (key ``encode_token(user)``, value
``{"rules": [rule, ...]}``, each rule an ``alert`` message without ``fired_*``). Every notifier
instance keeps a :class:`RuleIndex` of all rules (it follows the bucket), so a tick is checked
only against the rules on its symbol.

A rule fires once: :meth:`RuleIndex.on_price` removes what it returns, and the adapter deletes
the rule from the bucket (compare-and-set) after publishing, so a rule deleted or fired elsewhere
in between is not fired twice (the event ids make a repeat harmless anyway).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from tickmesh.contracts.codes import ErrorCode
from tickmesh.contracts.instruments import instruments


class RuleError(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = int(code)
        self.reason = reason


def make_rule(
    data: dict[str, Any],
    *,
    rule_id: str,
    price: Decimal | None,
    existing: list[dict[str, Any]],
    max_rules: int,
    now: int,
) -> dict[str, Any]:
    """A new stored rule from ``alert.create`` data; ``price`` is the current price (the
    reference for ``move_pct``, which therefore needs one: 605)."""
    if data["symbol"] not in instruments():
        raise RuleError(ErrorCode.UNKNOWN_SYMBOL, "unknown symbol")
    if len(existing) >= max_rules:
        raise RuleError(ErrorCode.TOO_MANY_ALERTS, f"at most {max_rules} alert rules per user")
    if price is None and data["condition"] == "move_pct":
        raise RuleError(ErrorCode.NO_PRICE, "no current price for the symbol yet")
    rule = {
        "id": rule_id,
        "symbol": data["symbol"],
        "condition": data["condition"],
        "threshold": data["threshold"],
        "created_ts": now,
    }
    if price is not None:
        rule["reference_price"] = format(price, "f")
    return rule


def triggered(rule: dict[str, Any], price: Decimal) -> bool:
    threshold = Decimal(rule["threshold"])
    cond = rule["condition"]
    if cond == "above":
        return price >= threshold
    if cond == "below":
        return price <= threshold
    ref = Decimal(rule["reference_price"])
    return abs(price - ref) * 100 >= threshold * ref


def fired_event(rule: dict[str, Any], price: Decimal, now: int) -> dict[str, Any]:
    """The ``alert`` event for the user's ``alerts`` channel."""
    return {**rule, "fired_ts": now, "fired_price": format(price, "f")}


def encode_rules(rules: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"rules": rules})


def decode_rules(data: bytes) -> list[dict[str, Any]]:
    return list(orjson.loads(data).get("rules", [])) if data else []


class RuleIndex:
    """Every user's live rules, indexed by symbol."""

    def __init__(self) -> None:
        self._by_symbol: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {}
        self._of_user: dict[str, set[tuple[str, str]]] = {}

    def set_user(self, user: str, rules: list[dict[str, Any]]) -> None:
        """Replace ``user``'s rules (what the bucket now holds)."""
        for symbol, rule_id in self._of_user.pop(user, set()):
            self._by_symbol.get(symbol, {}).pop(rule_id, None)
        keys = set()
        for rule in rules:
            self._by_symbol.setdefault(rule["symbol"], {})[rule["id"]] = (user, rule)
            keys.add((rule["symbol"], rule["id"]))
        if keys:
            self._of_user[user] = keys

    def on_price(self, symbol: str, price: Decimal) -> list[tuple[str, dict[str, Any]]]:
        """Remove and return ``(user, rule)`` for each rule on ``symbol`` that ``price`` fires."""
        rules = self._by_symbol.get(symbol)
        if not rules:
            return []
        hit = [(rid, user, rule) for rid, (user, rule) in rules.items() if triggered(rule, price)]
        for rid, user, _ in hit:
            del rules[rid]
            self._of_user.get(user, set()).discard((symbol, rid))
        return [(user, rule) for _, user, rule in hit]

    def __len__(self) -> int:
        return sum(len(r) for r in self._by_symbol.values())
