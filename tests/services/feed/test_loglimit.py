"""The log rate limit (sans-I/O): at most one line per key per interval, with a held-back count,
and its use by the pipeline (stale lines) and the Coinbase session (gap lines)."""

from __future__ import annotations

import logging

import pytest

from tickmesh import metrics
from tickmesh.services.market_feed.coinbase import CoinbaseSession
from tickmesh.services.market_feed.loglimit import LogLimiter
from tickmesh.services.market_feed.pipeline import Pipeline
from tickmesh.services.market_feed.provider import ProviderStats

from .util import tick


def test_one_line_per_key_per_interval_then_the_count_of_those_held_back():
    limit = LogLimiter(10.0)
    assert limit.allow("AAPL", 0.0) == 0
    assert [limit.allow("AAPL", now) for now in (0.1, 5.0, 9.99)] == [None, None, None]
    assert limit.suppressed("AAPL") == 3
    assert limit.allow("MSFT", 1.0) == 0, "keys are limited separately"
    assert limit.allow("AAPL", 10.0) == 3
    assert limit.suppressed("AAPL") == 0
    assert limit.allow("AAPL", 15.0) is None
    assert limit.allow("AAPL", 25.0) == 1


def test_a_burst_of_a_thousand_writes_one_line_per_key():
    limit = LogLimiter(10.0)
    written = [key for i in range(1000) for key in ("BTC-USD", "ETH-USD") if limit.allow(key, i * 0.001) is not None]
    assert written == ["BTC-USD", "ETH-USD"]


def test_keys_are_bounded_and_the_least_recently_logged_is_forgotten_first():
    limit = LogLimiter(10.0, max_keys=2)
    limit.allow("a", 0.0)
    limit.allow("b", 1.0)
    limit.allow("a", 2.0)  # suppressed: does not refresh "a"
    limit.allow("c", 3.0)  # forgets "a", the least recently logged
    assert limit.allow("a", 4.0) == 0, "a forgotten key logs at once"
    assert limit.allow("c", 4.0) is None


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        LogLimiter(-1.0)
    with pytest.raises(ValueError):
        LogLimiter(max_keys=0)


def test_stale_lines_are_limited_per_symbol_and_say_how_many_were_held_back(caplog):
    caplog.set_level(logging.INFO, logger="tickmesh.services.market_feed.pipeline")
    p = Pipeline(stale_after=1.0, log_interval=10.0)
    now = 0.0
    for n in range(1, 8):  # AAPL flaps: a tick, then silence past stale_after, every 1.5 s
        p.offer(tick("AAPL", "1.00", n), now=now)
        now += 1.5
        assert [t.stale for t in p.poll(now=now)] == [True], "every stale mark is still published"
    lines = [r for r in caplog.records if getattr(r, "event", None) == "feed.stale"]
    # Marks at 1.5, 3.0, ..., 10.5: the first is logged, the next at >= 11.5 s would be; 10.5 is not.
    assert [(r.symbol, r.suppressed) for r in lines] == [("AAPL", 0)]
    p.offer(tick("AAPL", "1.00", 9), now=11.0)
    p.poll(now=12.5)
    lines = [r for r in caplog.records if getattr(r, "event", None) == "feed.stale"]
    assert [(r.symbol, r.suppressed) for r in lines] == [("AAPL", 0), ("AAPL", 6)]


def test_the_pipeline_reports_each_drop_with_its_reason():
    reasons: list[str] = []
    p = Pipeline(symbols={"AAPL"}, on_drop=reasons.append)
    p.offer(tick("AAPL", "1.00", 5), now=0.0)
    p.offer(tick("AAPL", "1.00", 5), now=0.0)  # exact repeat
    p.offer(tick("AAPL", "1.00", 4), now=0.0)  # older
    p.offer(tick("MSFT", "1.00", 6), now=0.0)  # outside the universe
    assert reasons == ["stale", "stale", "invalid"]
    assert all(r in metrics.DROP_REASONS for r in reasons)


def test_coinbase_gap_lines_are_limited_but_every_gap_is_counted(caplog):
    caplog.set_level(logging.WARNING, logger="tickmesh.services.market_feed.coinbase")
    stats, limit = ProviderStats(), LogLimiter(10.0)
    gaps0 = metrics.value("tickmesh_provider_gaps_total", provider="coinbase")
    s = CoinbaseSession(("BTC-USD",), now=0.0, heartbeat_timeout=3.0, stats=stats, gap_log=limit)
    for i in range(50):  # every frame skips one sequence number
        s.receive(f'{{"channel":"other","sequence_num":{2 * i}}}', now=i * 0.1, recv_us=1)
    # A new connection (new session) shares the provider's limiter: still no new line.
    s2 = CoinbaseSession(("BTC-USD",), now=5.0, heartbeat_timeout=3.0, stats=stats, gap_log=limit)
    for seq in (1, 3):
        s2.receive(f'{{"channel":"other","sequence_num":{seq}}}', now=5.0, recv_us=1)
    s2.receive('{"channel":"other","sequence_num":9}', now=10.1, recv_us=1)  # 10 s after the first line
    assert stats.gaps == 51 and stats.missed == 49 + 1 + 5
    assert metrics.value("tickmesh_provider_gaps_total", provider="coinbase") == gaps0 + 51
    lines = [r for r in caplog.records if getattr(r, "event", None) == "feed.gap"]
    assert [r.suppressed for r in lines] == [0, 49]
