"""Market news: the provider interface, its ``synthetic`` and ``replay`` adapters, and who holds
what (to tell holders about a story on their symbols). Sans-I/O: time is an argument.

A provider says how long until its next story (:meth:`NewsProvider.interval`, seconds) and makes
it (:meth:`NewsProvider.next_story`, a contract-valid ``news`` dict, or None when it has nothing
more). The asyncio loop in ``service`` paces them; adding a real feed means one more class.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Protocol

import orjson

from tickmesh.contracts import messages
from tickmesh.contracts.instruments import instruments
from tickmesh.publish import new_id
from tickmesh.services.common.holdings import Account


class NewsProvider(Protocol):
    name: str

    def interval(self) -> float: ...

    def next_story(self, now: int) -> dict[str, Any] | None: ...


_HEADLINES = {
    "equities": [
        ("{s} beats quarterly earnings estimates", "Revenue and margins came in above consensus; guidance was raised."),
        ("{s} shares slide after guidance cut", "Management cited softer demand in the coming quarters."),
        ("Analysts upgrade {s} to buy", "The broker sees upside from new products and cost discipline."),
        ("{s} announces share buyback", "The board approved a repurchase programme over two years."),
        ("Regulators open inquiry into {s}", "The company said it would cooperate fully."),
    ],
    "crypto": [
        ("{s} jumps as exchange inflows surge", "On-chain data show heavy accumulation by large holders."),
        ("{s} slips after network upgrade delay", "Developers pushed the release back by several weeks."),
        ("ETF flows lift {s}", "Net inflows into listed products extended their streak."),
    ],
    "fx": [
        ("{s} moves after central bank remarks", "Officials signalled that rates may stay higher for longer."),
        ("{s} steady ahead of payrolls data", "Traders trimmed positions before the release."),
    ],
}


class SyntheticNews:
    """Plausible headlines about listed instruments, ``rate`` stories per minute (Poisson)."""

    name = "synthetic"

    def __init__(self, *, rate_per_min: float, seed: int | None = None, symbols: tuple[str, ...] | None = None) -> None:
        self.rng = random.Random(seed or None)
        self.rate = rate_per_min / 60.0
        self.symbols = symbols or tuple(instruments())

    def interval(self) -> float:
        return self.rng.expovariate(self.rate)

    def next_story(self, now: int) -> dict[str, Any]:
        symbol = self.rng.choice(self.symbols)
        headline, summary = self.rng.choice(_HEADLINES.get(instruments()[symbol].market, _HEADLINES["equities"]))
        return {
            "id": new_id("news"),
            "headline": headline.format(s=symbol),
            "summary": summary,
            "symbols": [symbol],
            "source": self.name,
            "ts": now,
        }


class ReplayNews:
    """Stories from an NDJSON file (one ``news`` object per line; ``id`` and ``ts`` optional),
    one every ``60 / rate`` seconds, re-stamped with the current time and a fresh id."""

    name = "replay"

    def __init__(self, path: str | Path, *, rate_per_min: float, loop: bool = True) -> None:
        self.stories = load_stories(path)
        self.gap = 60.0 / rate_per_min
        self.loop = loop
        self._next = 0

    def interval(self) -> float:
        return self.gap

    def next_story(self, now: int) -> dict[str, Any] | None:
        if self._next >= len(self.stories):
            if not self.loop or not self.stories:
                return None
            self._next = 0
        story = self.stories[self._next]
        self._next += 1
        return {**story, "id": new_id("news"), "ts": now, "source": story.get("source") or self.name}


def load_stories(path: str | Path) -> list[dict[str, Any]]:
    """Read and check every story of an NDJSON file; a bad line raises ``ValueError`` naming it."""
    out = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
            probe = {"id": "x", "ts": 946_684_800_000_000, "source": "replay", **obj}
            messages.schema("news").validate(probe)
        except (orjson.JSONDecodeError, messages.ContractError) as exc:
            raise ValueError(f"{path}:{n}: {exc}") from None
        out.append({k: v for k, v in obj.items() if k not in ("id", "ts")})
    return out


class HolderIndex:
    """Which users hold each symbol (kept from the holdings bucket)."""

    def __init__(self) -> None:
        self._holders: dict[str, set[str]] = {}
        self._held: dict[str, set[str]] = {}

    def set_account(self, user: str, account: Account | None) -> None:
        for symbol in self._held.pop(user, set()):
            self._holders.get(symbol, set()).discard(user)
        if account is None:
            return
        held = {s for s, p in account.positions.items() if p.quantity != 0}
        self._held[user] = held
        for symbol in held:
            self._holders.setdefault(symbol, set()).add(user)

    def holders_of(self, symbols: list[str]) -> dict[str, str]:
        """Each user holding one of ``symbols``, with the first such symbol (one notification
        per user and story)."""
        out: dict[str, str] = {}
        for symbol in symbols:
            for user in self._holders.get(symbol, ()):
                out.setdefault(user, symbol)
        return out
