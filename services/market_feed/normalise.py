"""Provider message shapes to the ``tick`` contract, with exact decimals.

Every provider's wire shape is turned into a :class:`Tick` here and nowhere else, so the rules
are the same for all of them: prices and sizes stay decimal strings from the wire to NATS (a
binary float never touches them), a missing or non-positive optional price is left out rather
than invented, and a message that cannot give a positive ``last`` yields no tick at all. The
functions are pure: they take the decoded message and the local receive time and return ticks.
Unknown fields are ignored, since vendors add them at any time.
"""

from __future__ import annotations

import calendar
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from tickmesh.contracts.messages import DECIMAL_RE


@dataclass(frozen=True, slots=True)
class Tick:
    """One normalised update. Prices are canonical decimal strings (no exponent); ``ts`` is the
    provider's event time and ``ingest_ts`` the local receive time, both in microseconds."""

    symbol: str
    last: str
    ts: int
    ingest_ts: int
    provider: str
    bid: str | None = None
    ask: str | None = None
    size: str | None = None
    stale: bool = False

    def to_message(self) -> dict[str, Any]:
        """The contract-shaped dict :meth:`tickmesh.publish.Publisher.publish_tick` validates and publishes."""
        out: dict[str, Any] = {"symbol": self.symbol, "last": self.last}
        for name in ("bid", "ask", "size"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        out.update(ts=self.ts, ingest_ts=self.ingest_ts, provider=self.provider)
        if self.stale:
            out["stale"] = True
        return out

    def fingerprint(self) -> tuple:
        """What makes two ticks the same update (used to drop duplicates)."""
        return (self.ts, self.last, self.bid, self.ask, self.size)

    def as_stale(self) -> Tick:
        return replace(self, stale=True)


def decode_json(text: str | bytes) -> Any:
    """Decode a provider frame; JSON numbers with a fraction become ``Decimal``, never float."""
    return json.loads(text, parse_float=Decimal)


def price(value: Any) -> str | None:
    """A positive exact decimal string for ``value`` (string, ``Decimal`` or int), else ``None``.

    Floats are refused: by the time a price is a float it is no longer exact.
    """
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return None
    try:
        dec = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation:
        return None
    if not dec.is_finite() or dec <= 0:
        return None
    text = format(dec, "f")
    return text if DECIMAL_RE.fullmatch(text) else None


# --- replay files and the synthetic market: contract-shaped records -------------------------


def from_record(record: Mapping[str, Any], *, provider: str, ingest_ts: int, ts: int | None = None) -> Tick | None:
    """A tick from a contract-shaped record (an NDJSON object or a CSV row of strings).

    ``ts`` overrides the record's own time (replay re-bases time to now).
    """
    symbol = record.get("symbol")
    last = price(record.get("last"))
    if not isinstance(symbol, str) or not symbol or last is None:
        return None
    if ts is None:
        ts = _int(record.get("ts"))
        if ts is None:
            return None
    return Tick(
        symbol=symbol,
        last=last,
        ts=ts,
        ingest_ts=ingest_ts,
        provider=provider,
        bid=price(record.get("bid")),
        ask=price(record.get("ask")),
        size=price(record.get("size")),
    )


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


# --- Coinbase Advanced Trade ------------------------------------------------------------------

_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?")


def rfc3339_us(text: Any) -> int | None:
    """Microseconds since the epoch for an RFC 3339 time (nanosecond fractions are truncated)."""
    if not isinstance(text, str):
        return None
    m = _RFC3339.match(text.strip())
    if not m:
        return None
    date, hh, mm, ss, frac, zone = m.groups()
    y, mo, d = (int(p) for p in date.split("-"))
    try:
        secs = calendar.timegm((y, mo, d, int(hh), int(mm), int(ss), 0, 0, 0))
    except (ValueError, OverflowError):
        return None
    if zone and zone != "Z":
        sign = -1 if zone[0] == "+" else 1
        digits = zone[1:].replace(":", "")
        secs += sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    micros = int((frac or "0")[:6].ljust(6, "0"))
    return secs * 1_000_000 + micros


def from_coinbase_ticker(envelope: Mapping[str, Any], *, ingest_ts: int) -> list[Tick]:
    """Ticks from a Coinbase ``ticker`` envelope (``snapshot`` or ``update`` events).

    The envelope's ``timestamp`` is the provider time of every ticker in it; when it is missing
    or unreadable the receive time stands in, so a tick is never dropped for a bad clock field.
    """
    ts = rfc3339_us(envelope.get("timestamp")) or ingest_ts
    out: list[Tick] = []
    for event in envelope.get("events") or ():
        if not isinstance(event, Mapping):
            continue
        for t in event.get("tickers") or ():
            if not isinstance(t, Mapping):
                continue
            symbol, last = t.get("product_id"), price(t.get("price"))
            if not isinstance(symbol, str) or last is None:
                continue
            out.append(
                Tick(
                    symbol=symbol,
                    last=last,
                    ts=ts,
                    ingest_ts=ingest_ts,
                    provider="coinbase",
                    bid=price(t.get("best_bid")),
                    ask=price(t.get("best_ask")),
                )
            )
    return out


# --- Binance Spot -----------------------------------------------------------------------------


def from_binance_trade(data: Mapping[str, Any], *, symbol: str, ingest_ts: int) -> Tick | None:
    """A tick from a ``trade`` payload; ``T`` (trade time, ms) is the provider time."""
    last = price(data.get("p"))
    when = _int(data.get("T")) or _int(data.get("E"))
    if last is None or when is None:
        return None
    return Tick(
        symbol=symbol, last=last, ts=when * 1000, ingest_ts=ingest_ts, provider="binance", size=price(data.get("q"))
    )


def from_binance_book(
    data: Mapping[str, Any], *, symbol: str, ts: int, ingest_ts: int, last_trade: str | None
) -> Tick | None:
    """A tick from a ``bookTicker`` payload, which has no price of its own: ``last`` is the last
    trade seen for the symbol, or the exact mid of bid and ask before any trade. ``bookTicker``
    carries no time either, so the caller supplies ``ts``."""
    bid, ask = price(data.get("b")), price(data.get("a"))
    last = last_trade
    if last is None and bid is not None and ask is not None:
        last = price((Decimal(bid) + Decimal(ask)) / 2)
    if last is None:
        return None
    return Tick(symbol=symbol, last=last, ts=ts, ingest_ts=ingest_ts, provider="binance", bid=bid, ask=ask)
