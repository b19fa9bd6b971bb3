"""Binance Spot public market data: combined ``trade`` and ``bookTicker`` streams.

One connection to ``<base>/stream`` carries every symbol; the streams are requested with live
``SUBSCRIBE`` messages (re-sent after every reconnect) of at most 200 streams each, spaced so the
5-messages-per-second inbound limit holds. The base URL is a setting because binance.com refuses
US addresses: binance.us and data-stream.binance.vision speak the same protocol.

Guarantees (:class:`BinanceSession` is sans-I/O; :class:`BinanceBooks` outlives connections):

* ``u`` (book updates) and ``t`` (trades) only grow per symbol, across reconnects too: a lower or
  repeated value is stale and dropped (counted as ``stale_ids`` and as
  ``tickmesh_dropped_messages_total{reason="stale"}``);
* ``t`` grows by exactly one per trade of a symbol: a larger step is a gap (trades missed, e.g.
  while reconnecting), counted in ``gaps``/``missed`` and ``tickmesh_provider_gaps_total``, and
  logged at most once per symbol per 10 s with the number of lines held back. (``u`` is one
  counter across all symbols, so its steps say nothing about one symbol's losses.)
* ``bookTicker`` has no price of its own nor a timestamp: its ``last`` is the latest trade (or
  the exact mid before any trade) and its ``ts`` is the receive time corrected by the exchange
  clock offset seen on trades. A symbol's ``ts`` never goes backwards, so the pipeline's
  ordering rule cannot drop a trade for a clock skew between the two streams;
* ``serverShutdown`` (sent before the 24 h limit closes a connection) makes the adapter
  reconnect at once; so does silence for ``idle_timeout`` seconds (the server's pings are
  answered by the websockets library, and its own keepalive pings catch a dead TCP path);
* reconnects never come closer than one second apart (300 attempts per 5 minutes per IP).

Symbols: ``BTCUSDT`` becomes ``BTC-USDT`` by the longest known quote asset it ends with.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from tickmesh import metrics
from tickmesh.backoff import Backoff

from .connection import run_websocket
from .loglimit import LogLimiter
from .normalise import Tick, decode_json, from_binance_book, from_binance_trade
from .provider import Emit, ProviderStats

log = logging.getLogger(__name__)

DEFAULT_URL = "wss://stream.binance.com:9443"
MIN_CONNECT_INTERVAL_S = 1.0
STREAMS_PER_MESSAGE = 200
SUBSCRIBE_SPACING_S = 0.25
QUOTE_ASSETS = (
    "FDUSD",
    "USDT",
    "USDC",
    "TUSD",
    "BUSD",
    "DAI",
    "USD",
    "BTC",
    "ETH",
    "BNB",
    "EUR",
    "GBP",
    "TRY",
    "BRL",
    "JPY",
    "AUD",
)


def canonical(exchange_symbol: str) -> str | None:
    """``BTCUSDT`` -> ``BTC-USDT``; ``None`` when no known quote asset ends it."""
    sym = exchange_symbol.upper()
    for quote in sorted(QUOTE_ASSETS, key=len, reverse=True):
        if sym.endswith(quote) and len(sym) > len(quote):
            return f"{sym[: -len(quote)]}-{quote}"
    return None


def exchange_symbol(symbol: str) -> str:
    """``BTC-USDT`` -> ``BTCUSDT``. Raises ``ValueError`` for a symbol Binance cannot list."""
    base, sep, quote = symbol.partition("-")
    if not sep or not base.isalnum() or quote not in QUOTE_ASSETS:
        raise ValueError(f"{symbol} is not BASE-QUOTE with a known quote asset ({', '.join(QUOTE_ASSETS)})")
    return base + quote


def stream_names(symbols: tuple[str, ...]) -> list[str]:
    return [f"{exchange_symbol(s).lower()}@{kind}" for s in symbols for kind in ("trade", "bookTicker")]


@dataclass
class _Book:
    last_u: int = -1
    last_t: int = -1
    last_trade: str | None = None
    ts: int = 0


class BinanceBooks:
    """Per-symbol state that must survive reconnects: the newest ids, last trade and time."""

    def __init__(self) -> None:
        self.by_symbol: dict[str, _Book] = {}
        self.clock_offset_us = 0  # exchange clock minus local clock, from trade event times
        self.gap_log = LogLimiter()  # per symbol, across connections

    def book(self, symbol: str) -> _Book:
        b = self.by_symbol.get(symbol)
        if b is None:
            b = self.by_symbol[symbol] = _Book()
        return b


class BinanceSession:
    def __init__(
        self, symbols: tuple[str, ...], books: BinanceBooks, *, now: float, idle_timeout: float, stats: ProviderStats
    ) -> None:
        self.streams = stream_names(symbols)
        self.names = {exchange_symbol(s): s for s in symbols}
        self.books = books
        self.idle_timeout = idle_timeout
        self.stats = stats
        self.deadline = now + idle_timeout
        self._now = now
        self.healthy = False
        self.reconnect: str | None = None

    def opening(self) -> list[str]:
        chunks = [self.streams[i : i + STREAMS_PER_MESSAGE] for i in range(0, len(self.streams), STREAMS_PER_MESSAGE)]
        return [json.dumps({"method": "SUBSCRIBE", "params": chunk, "id": n}) for n, chunk in enumerate(chunks, 1)]

    def receive(self, text: str, *, now: float, recv_us: int) -> list[Tick]:
        self.deadline = now + self.idle_timeout
        self._now = now
        try:
            msg = decode_json(text)
        except ValueError:
            msg = None
        if not isinstance(msg, dict):
            self.stats.ignored += 1
            return []
        if "id" in msg and ("result" in msg or "code" in msg):
            return self._reply(msg)
        stream = msg.get("stream")
        data = msg.get("data") if isinstance(stream, str) else msg
        if not isinstance(data, dict):
            self.stats.ignored += 1
            return []
        if data.get("e") == "serverShutdown" or stream == "!serverShutdown":
            self.stats.shutdowns += 1
            self.reconnect = "server announced shutdown"
            return []
        kind = stream.rsplit("@", 1)[-1] if isinstance(stream, str) else data.get("e")
        if kind == "trade":
            return self._trade(data, recv_us)
        if kind == "bookTicker" or (kind is None and {"u", "b", "a"} <= data.keys()):
            return self._book_ticker(data, recv_us)
        self.stats.ignored += 1
        return []

    def _reply(self, msg: dict[str, Any]) -> list[Tick]:
        if "code" in msg:
            self.stats.errors += 1
            log.warning(
                "binance refused request %s: %s",
                msg.get("id"),
                str(msg.get("msg"))[:200],
                extra={"event": "feed.provider_error", "provider": "binance", "code": msg.get("code")},
            )
        else:
            self.healthy = True
            log.info(
                "binance subscription %s acknowledged",
                msg.get("id"),
                extra={"event": "feed.subscribed", "provider": "binance"},
            )
        return []

    def _symbol(self, data: dict[str, Any]) -> str | None:
        raw = data.get("s")
        if not isinstance(raw, str):
            return None
        return self.names.get(raw.upper()) or canonical(raw)

    def _fresh(self, book: _Book, attr: str, value: Any) -> bool:
        if not isinstance(value, int) or isinstance(value, bool):
            return False
        last = getattr(book, attr)
        if value <= last:
            self.stats.stale_ids += 1
            metrics.dropped("stale")
            return False
        setattr(book, attr, value)
        return True

    def _trade_gap(self, symbol: str, last_t: int, t: int) -> None:
        """Count (and log, rate-limited per symbol) the trades a step of ``t`` skipped."""
        if last_t < 0 or t == last_t + 1:
            return
        self.stats.gaps += 1
        self.stats.missed += t - last_t - 1
        metrics.provider_gap("binance")
        suppressed = self.books.gap_log.allow(symbol, self._now)
        if suppressed is not None:
            log.warning(
                "binance %s trade gap: expected %d, got %d (%d such lines held back)",
                symbol,
                last_t + 1,
                t,
                suppressed,
                extra={
                    "event": "feed.gap",
                    "provider": "binance",
                    "symbol": symbol,
                    "expected": last_t + 1,
                    "got": t,
                    "suppressed": suppressed,
                },
            )

    def _trade(self, data: dict[str, Any], recv_us: int) -> list[Tick]:
        symbol = self._symbol(data)
        if symbol is None:
            self.stats.ignored += 1
            return []
        book = self.books.book(symbol)
        last_t = book.last_t
        if not self._fresh(book, "last_t", data.get("t")):
            return []
        self._trade_gap(symbol, last_t, book.last_t)
        tick = from_binance_trade(data, symbol=symbol, ingest_ts=recv_us)
        if tick is None:
            self.stats.ignored += 1
            return []
        self.healthy = True
        event = data.get("E")
        if isinstance(event, int) and not isinstance(event, bool):
            self.books.clock_offset_us = event * 1000 - recv_us
        book.last_trade = tick.last
        return [self._monotonic(book, tick)]

    def _book_ticker(self, data: dict[str, Any], recv_us: int) -> list[Tick]:
        symbol = self._symbol(data)
        if symbol is None:
            self.stats.ignored += 1
            return []
        book = self.books.book(symbol)
        if not self._fresh(book, "last_u", data.get("u")):
            return []
        tick = from_binance_book(
            data, symbol=symbol, ts=recv_us + self.books.clock_offset_us, ingest_ts=recv_us, last_trade=book.last_trade
        )
        if tick is None:
            self.stats.ignored += 1
            return []
        self.healthy = True
        return [self._monotonic(book, tick)]

    @staticmethod
    def _monotonic(book: _Book, tick: Tick) -> Tick:
        if tick.ts < book.ts:
            tick = replace(tick, ts=book.ts)
        book.ts = tick.ts
        return tick


class BinanceProvider:
    name = "binance"

    def __init__(
        self,
        symbols: tuple[str, ...],
        *,
        url: str = DEFAULT_URL,
        idle_timeout: float = 60.0,
        reconnect_max: float = 30.0,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not symbols:
            raise ValueError("binance needs at least one symbol")
        stream_names(symbols)  # raises early for a symbol Binance cannot list
        self.symbols = symbols
        base = url.rstrip("/")
        self.url = base if base.endswith("/stream") else base + "/stream"
        self.idle_timeout = idle_timeout
        self.backoff = backoff or Backoff(base=1.0, cap=reconnect_max, min_interval=MIN_CONNECT_INTERVAL_S)
        self.clock = clock
        self.books = BinanceBooks()
        self.stats = ProviderStats()

    def session(self, now: float) -> BinanceSession:
        return BinanceSession(self.symbols, self.books, now=now, idle_timeout=self.idle_timeout, stats=self.stats)

    async def run(self, emit: Emit) -> None:
        await run_websocket(
            name=self.name,
            url=self.url,
            new_session=self.session,
            emit=emit,
            backoff=self.backoff,
            stats=self.stats,
            send_interval=SUBSCRIBE_SPACING_S,
            clock=self.clock,
        )
