"""Every provider's message shapes become contract ticks with exact decimals."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tickmesh.contracts import messages
from tickmesh.services.market_feed.normalise import (
    decode_json,
    from_binance_book,
    from_binance_trade,
    from_coinbase_ticker,
    from_record,
    price,
    rfc3339_us,
)

RECV = 1_772_460_000_500_000


def valid(tick) -> dict:
    return messages.schema("tick").validate(tick.to_message())


@pytest.mark.parametrize(
    "raw,want",
    [
        ("187.20", "187.20"),
        ("0.00001000", "0.00001000"),
        (Decimal("1E+2"), "100"),
        ("1e-8", "0.00000001"),
        (7, "7"),
        (" 3.5 ", "3.5"),
        ("0", None),
        ("-1.5", None),
        ("", None),
        ("abc", None),
        ("NaN", None),
        ("Infinity", None),
        (None, None),
        (True, None),
        (187.2, None),
    ],
)
def test_prices_are_exact_positive_decimal_strings_or_nothing(raw, want):
    assert price(raw) == want


def test_json_numbers_are_parsed_as_decimals_not_floats():
    msg = decode_json('{"p": 0.1000000000000000055511151231257827, "t": 12}')
    assert msg["p"] == Decimal("0.1000000000000000055511151231257827") and msg["t"] == 12
    assert price(decode_json('{"p": 67250.10}')["p"]) == "67250.10"


def test_coinbase_ticker_envelope():
    env = decode_json(
        '{"channel":"ticker","client_id":"","timestamp":"2026-03-02T14:00:00.102119442Z",'
        '"sequence_num":1,"events":[{"type":"snapshot","tickers":['
        '{"type":"ticker","product_id":"BTC-USD","price":"67250.01","best_bid":"67250.00",'
        '"best_bid_quantity":"0.1","best_ask":"67250.01","best_ask_quantity":"0.2","new_field":1},'
        '{"type":"ticker","product_id":"DOGE-USD","price":"0.12345","best_bid":"","best_ask":"0.12346"}]}]}'
    )
    btc, doge = from_coinbase_ticker(env, ingest_ts=RECV)
    assert valid(btc) == {
        "symbol": "BTC-USD",
        "last": "67250.01",
        "bid": "67250.00",
        "ask": "67250.01",
        "ts": 1772460000102119,
        "ingest_ts": RECV,
        "provider": "coinbase",
    }
    assert doge.bid is None and doge.ask == "0.12346"
    valid(doge)


def test_coinbase_without_a_readable_timestamp_uses_the_receive_time():
    [t] = from_coinbase_ticker(
        {"events": [{"tickers": [{"product_id": "ETH-USD", "price": "3120.5"}]}]}, ingest_ts=RECV
    )
    assert t.ts == RECV


@pytest.mark.parametrize(
    "text,want",
    [
        ("2026-03-02T14:00:00Z", 1772460000000000),
        ("2026-03-02T14:00:00.5Z", 1772460000500000),
        ("2026-03-02T14:00:00.123456789Z", 1772460000123456),
        ("2026-03-02T15:00:00.000001+01:00", 1772460000000001),
        ("2026-03-02 14:00:00.25 +0000 UTC", 1772460000250000),
        ("yesterday", None),
        (None, None),
    ],
)
def test_rfc3339_to_microseconds(text, want):
    assert rfc3339_us(text) == want


def test_binance_trade_and_book_ticker():
    trade = decode_json(
        '{"e":"trade","E":1772460000123,"s":"BTCUSDT","t":3912345001,"p":"67250.02000000",'
        '"q":"0.00150000","T":1772460000122,"m":false}'
    )
    t = from_binance_trade(trade, symbol="BTC-USDT", ingest_ts=RECV)
    assert valid(t) == {
        "symbol": "BTC-USDT",
        "last": "67250.02000000",
        "size": "0.00150000",
        "ts": 1772460000122000,
        "ingest_ts": RECV,
        "provider": "binance",
    }
    book = decode_json('{"u":400900217,"s":"BTCUSDT","b":"67250.01000000","B":"0.5","a":"67250.02000000","A":"1.1"}')
    b = from_binance_book(book, symbol="BTC-USDT", ts=RECV, ingest_ts=RECV, last_trade="67250.02000000")
    assert (b.last, b.bid, b.ask, b.size) == ("67250.02000000", "67250.01000000", "67250.02000000", None)
    mid = from_binance_book(book, symbol="BTC-USDT", ts=RECV, ingest_ts=RECV, last_trade=None)
    assert Decimal(mid.last) == Decimal("67250.015")
    valid(mid)


def test_binance_book_without_a_usable_side_and_no_trade_yields_nothing():
    book = {"u": 1, "s": "BTCUSDT", "b": "0.00000000", "a": "67250.02"}
    assert from_binance_book(book, symbol="BTC-USDT", ts=RECV, ingest_ts=RECV, last_trade=None) is None


def test_records_from_ndjson_and_csv_shapes_alike():
    from_json = from_record(
        decode_json(
            '{"symbol":"EUR/USD","last":1.08423,"bid":"1.08421","ask":"1.08423","size":"250000","ts":1772460000945490}'
        ),
        provider="replay",
        ingest_ts=RECV,
    )
    from_csv = from_record(
        {
            "symbol": "EUR/USD",
            "last": "1.08423",
            "bid": "1.08421",
            "ask": "1.08423",
            "size": "250000",
            "ts": "1772460000945490",
        },
        provider="replay",
        ingest_ts=RECV,
    )
    assert from_json == from_csv and valid(from_json)["last"] == "1.08423"
    assert from_record({"symbol": "AAPL", "last": "1", "ts": "x"}, provider="replay", ingest_ts=RECV) is None
    assert from_record({"symbol": "AAPL", "last": "-1", "ts": 1}, provider="replay", ingest_ts=RECV) is None
    assert from_record({"symbol": "AAPL", "last": "1"}, provider="replay", ingest_ts=RECV, ts=RECV).ts == RECV
