"""Price alerts over NATS: the ``alert.*`` commands and firing, on ``ALERTS_BUCKET``.

Every change to a user's rules is a compare-and-set on their key, so concurrent commands (or two
notifier instances) never lose a rule. ``alert.create`` derives the rule id from (user, cmd_id):
a retried command finds its rule instead of adding a second one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from tickmesh.contracts.channels import Channel, Kind, encode_token
from tickmesh.contracts.codes import ErrorCode
from tickmesh.contracts.commands import CommandRequest
from tickmesh.publish import Publisher, now_us, stable_id
from tickmesh.services.common.prices import PriceBook
from tickmesh.services.runner import CommandError

from . import rules as r
from .notifications import alert_notification

log = logging.getLogger(__name__)

Rules = list[dict[str, Any]]


class Alerts:
    def __init__(self, *, publisher: Publisher, kv: Any, prices: PriceBook, max_rules: int) -> None:
        self.publisher = publisher
        self.kv = kv
        self.prices = prices
        self.max_rules = max_rules
        self.index = r.RuleIndex()
        self._tasks: set[asyncio.Task] = set()

    # --- commands --------------------------------------------------------------------------

    async def create(self, req: CommandRequest) -> dict[str, Any]:
        rule_id = stable_id("al", req.user, req.cmd_id)
        made: dict[str, Any] = {}

        def add(rules: Rules) -> Rules | None:
            same = [x for x in rules if x["id"] == rule_id]
            if same:  # a retry of a create that already happened
                made["rule"] = same[0]
                return None
            rule = r.make_rule(
                req.data,
                rule_id=rule_id,
                price=self.prices.get(req.data["symbol"]),
                existing=rules,
                max_rules=self.max_rules,
                now=now_us(),
            )
            made["rule"] = rule
            return [*rules, rule]

        await self._change(req.user, add)
        log.info("alert %s created", rule_id, extra={"event": "notifier.alert_created", "alert_id": rule_id})
        return made["rule"]

    async def list(self, req: CommandRequest) -> dict[str, Any]:
        rules, _ = await self._load(req.user)
        return {"alerts": rules}

    async def delete(self, req: CommandRequest) -> dict[str, Any]:
        rule_id = req.data["id"]

        def drop(rules: Rules) -> Rules | None:
            if not any(x["id"] == rule_id for x in rules):
                raise r.RuleError(ErrorCode.UNKNOWN_ALERT, "no such alert rule")
            return [x for x in rules if x["id"] != rule_id]

        await self._change(req.user, drop)
        return {"id": rule_id}

    # --- firing ----------------------------------------------------------------------------

    def on_price(self, symbol: str, price: Decimal, ts: int) -> None:
        for user, rule in self.index.on_price(symbol, price):
            task = asyncio.ensure_future(self._fire(user, rule, price))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _fire(self, user: str, rule: dict[str, Any], price: Decimal) -> None:
        """Publish the notification and the alert event (ids derived from the rule: a repeat is
        stored once), then remove the rule; a rule already gone was fired or deleted elsewhere."""
        try:
            current, _ = await self._load(user)
            if not any(x["id"] == rule["id"] for x in current):
                return
            now = now_us()
            await self.publisher.publish(
                Channel(Kind.NOTIFICATIONS, user), alert_notification(user, rule, format(price, "f"), now)
            )
            await self.publisher.publish(
                Channel(Kind.ALERTS, user), r.fired_event(rule, price, now), id=stable_id("af", rule["id"])
            )
            await self._change(user, lambda rules: [x for x in rules if x["id"] != rule["id"]])
            log.info("alert %s fired", rule["id"], extra={"event": "notifier.alert_fired", "alert_id": rule["id"]})
        except Exception:
            log.exception("firing an alert failed", extra={"event": "notifier.alert_failed", "alert_id": rule["id"]})

    def on_stored(self, user: str, rules: Rules) -> None:
        """The bucket changed (or was replayed at start): index what it now holds."""
        self.index.set_user(user, rules)
        # A rule whose condition already holds fires now, without waiting for the next tick.
        for symbol in {rule["symbol"] for rule in rules}:
            price = self.prices.get(symbol)
            if price is not None:
                self.on_price(symbol, price, 0)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)

    # --- storage ---------------------------------------------------------------------------

    async def _load(self, user: str) -> tuple[Rules, int | None]:
        try:
            entry = await self.kv.get(encode_token(user))
        except KeyNotFoundError:
            return [], None
        return r.decode_rules(entry.value), entry.revision

    async def _change(self, user: str, change: Callable[[Rules], Rules | None]) -> None:
        """Apply ``change`` (None: nothing to write) with compare-and-set, retrying on conflict."""
        key = encode_token(user)
        for _ in range(50):
            rules, revision = await self._load(user)
            try:
                new = change(rules)
            except r.RuleError as exc:
                raise CommandError(exc.code, exc.reason) from None
            if new is None:
                return
            try:
                if revision is None:
                    await self.kv.create(key, r.encode_rules(new))
                else:
                    await self.kv.update(key, r.encode_rules(new), last=revision)
                return
            except KeyWrongLastSequenceError:
                continue
        raise CommandError(ErrorCode.INTERNAL, "alert rules kept changing")
