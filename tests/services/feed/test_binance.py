"""The Binance adapter against a local fake Binance server replaying a recorded session."""

from __future__ import annotations

import json

import pytest

from tickmesh.backoff import Backoff
from tickmesh.services.market_feed.binance import (
    BinanceBooks,
    BinanceProvider,
    BinanceSession,
    canonical,
    exchange_symbol,
    stream_names,
)
from tickmesh.services.market_feed.provider import ProviderStats

from .fakes import FakeBinance
from .util import Collector, running, until

SYMBOLS = ("BTC-USDT", "ETH-USDT")
TICKS_PER_SESSION = 7  # ten frames: one unknown stream, one stale u, one repeated t


def provider(url: str, **kw) -> BinanceProvider:
    kw.setdefault("idle_timeout", 30.0)
    kw.setdefault("backoff", Backoff(base=0.05, cap=0.2, min_interval=0.02, rng=lambda: 0.5))
    return BinanceProvider(SYMBOLS, url=url, **kw)


async def test_subscribes_on_the_combined_endpoint_answers_pings_and_emits_exact_ticks():
    async with FakeBinance() as fake:
        feed, got = provider(fake.url), Collector()
        async with running(feed, got):
            await until(lambda: len(got.ticks) >= TICKS_PER_SESSION, what="the recorded ticks")
            await until(lambda: fake.connections[0].pongs == 1, what="the pong")
    conn = fake.connections[0]
    assert conn.path == "/stream"
    assert conn.received == [
        {
            "method": "SUBSCRIBE",
            "id": 1,
            "params": ["btcusdt@trade", "btcusdt@bookTicker", "ethusdt@trade", "ethusdt@bookTicker"],
        }
    ]
    btc = [t for t in got.ticks if t.symbol == "BTC-USDT"]
    # bookTicker before any trade: last is the exact mid; then the trade's price and size.
    assert (btc[0].last, btc[0].bid, btc[0].ask, btc[0].size) == (
        "67250.01500000",
        "67250.01000000",
        "67250.02000000",
        None,
    )
    assert (btc[1].last, btc[1].size) == ("67250.02000000", "0.00150000")
    assert btc[2].last == "67250.02000000" and btc[2].bid == "67250.50000000"  # last trade carried over
    # The recording's trade times are months old, the first bookTicker is stamped "now": a
    # symbol's ts never goes backwards, so the trade cannot look out of order downstream.
    assert [t.ts for t in btc] == sorted(t.ts for t in btc)
    assert feed.stats.stale_ids == 2 and feed.stats.ignored == 1
    assert all(t.provider == "binance" and t.ingest_ts > 0 for t in got.ticks)


async def test_server_shutdown_makes_it_reconnect_and_resubscribe():
    async with FakeBinance(("shutdown", "silent")) as fake:
        feed, got = provider(fake.url), Collector()
        async with running(feed, got):
            await until(lambda: len(fake.connections) >= 2 and fake.connections[1].received, what="a resubscription")
    assert feed.stats.shutdowns == 1
    assert fake.connections[1].received == fake.connections[0].received
    # The second session replays the same ids: all stale, across the reconnect.
    assert len(got.ticks) == TICKS_PER_SESSION


async def test_silence_makes_it_reconnect():
    async with FakeBinance(("silent",)) as fake:
        feed, got = provider(fake.url, idle_timeout=0.3), Collector()
        async with running(feed, got):
            await until(lambda: len(fake.connections) >= 2 and fake.connections[1].received, what="a reconnect")
    assert feed.stats.silences >= 1


def test_default_backoff_never_reconnects_faster_than_once_a_second():
    feed = BinanceProvider(SYMBOLS)
    feed.backoff.attempt(100.0)
    assert feed.backoff.delay(100.0) == pytest.approx(1.0)
    assert feed.backoff.delay(100.4) == pytest.approx(0.6)


@pytest.mark.parametrize(
    "raw,want",
    [
        ("BTCUSDT", "BTC-USDT"),
        ("ETHBTC", "ETH-BTC"),
        ("BTCFDUSD", "BTC-FDUSD"),
        ("BTCUSD", "BTC-USD"),
        ("SOLUSDC", "SOL-USDC"),
        ("USDT", None),
        ("XYZ", None),
    ],
)
def test_symbols_map_to_canonical_form_by_quote_asset(raw, want):
    assert canonical(raw) == want


def test_canonical_symbols_map_back_to_stream_names():
    assert exchange_symbol("BTC-USDT") == "BTCUSDT"
    assert stream_names(("ETH-BTC",)) == ["ethbtc@trade", "ethbtc@bookTicker"]
    with pytest.raises(ValueError):
        exchange_symbol("AAPL")


def test_many_streams_are_split_into_paced_subscribe_messages():
    symbols = tuple(f"C{i}-USDT" for i in range(150))
    frames = BinanceSession(symbols, BinanceBooks(), now=0, idle_timeout=60, stats=ProviderStats()).opening()
    params = [json.loads(f)["params"] for f in frames]
    assert [len(p) for p in params] == [200, 100]
    assert [json.loads(f)["id"] for f in frames] == [1, 2]


def test_errors_and_garbage_are_counted_not_raised():
    stats = ProviderStats()
    s = BinanceSession(SYMBOLS, BinanceBooks(), now=0, idle_timeout=60, stats=stats)
    assert s.receive('{"code":2,"msg":"Invalid request","id":1}', now=1, recv_us=1) == []
    assert s.receive("{not json", now=1, recv_us=1) == []
    assert s.receive('{"stream":"btcusdt@kline_1m","data":{"e":"kline"}}', now=1, recv_us=1) == []
    assert (stats.errors, stats.ignored) == (1, 2) and not s.healthy and s.reconnect is None


def test_raw_stream_payloads_are_understood_too():
    s = BinanceSession(SYMBOLS, BinanceBooks(), now=0, idle_timeout=60, stats=ProviderStats())
    ticks = s.receive(
        '{"e":"trade","E":1772460000001,"s":"ETHUSDT","t":5,"p":"3120.1","q":"1.5","T":1772460000000}',
        now=1,
        recv_us=1772460000004000,
    )
    assert [(t.symbol, t.last, t.size) for t in ticks] == [("ETH-USDT", "3120.1", "1.5")]
    assert s.receive('{"e":"serverShutdown","E":1}', now=1, recv_us=1) == [] and s.reconnect


def test_trade_time_is_the_tick_time_and_book_tickers_follow_the_exchange_clock():
    s = BinanceSession(SYMBOLS, BinanceBooks(), now=0, idle_timeout=60, stats=ProviderStats())
    # Exchange clock 2 ms ahead of ours (event E at 1000.002 s, received at 1000.000 s local).
    [trade] = s.receive(
        '{"stream":"btcusdt@trade","data":{"e":"trade","E":1772460001002,"s":"BTCUSDT","t":9,'
        '"p":"67000.5","q":"0.1","T":1772460001001}}',
        now=1,
        recv_us=1772460001000000,
    )
    assert trade.ts == 1772460001001000 and trade.ingest_ts == 1772460001000000
    [book] = s.receive(
        '{"stream":"btcusdt@bookTicker","data":{"u":3,"s":"BTCUSDT","b":"67000.4","B":"1","a":"67000.6","A":"2"}}',
        now=2,
        recv_us=1772460001500000,
    )
    assert book.ts == 1772460001502000 and book.last == "67000.5"
    # A trade stamped before that book update (exchange-side) still moves forward in time.
    [late] = s.receive(
        '{"stream":"btcusdt@trade","data":{"e":"trade","E":1772460001501,"s":"BTCUSDT","t":10,'
        '"p":"67000.6","q":"0.2","T":1772460001500}}',
        now=3,
        recv_us=1772460001600000,
    )
    assert late.ts == book.ts
