"""The Coinbase adapter against a local fake Coinbase server replaying a recorded session."""

from __future__ import annotations

import logging

from tickmesh.backoff import Backoff
from tickmesh.services.market_feed.coinbase import CoinbaseProvider, CoinbaseSession
from tickmesh.services.market_feed.provider import ProviderStats

from .fakes import FakeCoinbase, recording
from .util import Collector, running, until

PRODUCTS = ("BTC-USD", "ETH-USD")
TICKS_PER_SESSION = 7  # a snapshot of two products and five updates in the recording


def fast_backoff(rng=lambda: 0.5) -> Backoff:
    return Backoff(base=0.05, cap=0.2, min_interval=0.02, rng=rng)


def provider(url: str, **kw) -> CoinbaseProvider:
    kw.setdefault("heartbeat_timeout", 30.0)
    kw.setdefault("backoff", fast_backoff())
    return CoinbaseProvider(PRODUCTS, url=url, **kw)


async def test_subscribes_to_ticker_and_heartbeats_then_emits_exact_ticks():
    async with FakeCoinbase() as fake:
        feed, got = provider(fake.url), Collector()
        async with running(feed, got):
            await until(lambda: len(got.ticks) >= TICKS_PER_SESSION, what="the recorded ticks")
        subs = fake.connections[0].received
        assert {m["channel"] for m in subs} == {"ticker", "heartbeats"}
        assert all(m["type"] == "subscribe" and m["product_ids"] == list(PRODUCTS) for m in subs)
    first = got.ticks[0]
    assert (first.symbol, first.last, first.bid, first.ask) == ("BTC-USD", "67250.01", "67250.00", "67250.01")
    assert first.ts == 1772460000102119 and first.provider == "coinbase" and first.ingest_ts > first.ts
    assert [t.last for t in got.ticks if t.symbol == "ETH-USD"] == ["3120.55", "3120.49", "3121.02"]
    assert feed.stats.ignored == 1  # the "status" channel nobody subscribed to
    assert feed.stats.gaps == 0 and feed.stats.attempts == 1


async def test_sequence_and_heartbeat_gaps_are_counted_and_logged(caplog):
    heartbeat_frame = next(
        i for i, f in enumerate(recording("coinbase_session.ndjson")) if '"heartbeats"' in f and i > 3
    )
    caplog.set_level(logging.WARNING, logger="tickmesh.services.market_feed.coinbase")
    async with FakeCoinbase(drop=frozenset({4, heartbeat_frame})) as fake:
        feed, got = provider(fake.url), Collector()
        async with running(feed, got):
            await until(lambda: len(got.ticks) >= TICKS_PER_SESSION - 1, what="the ticks that were not dropped")
    # Dropping a ticker frame breaks sequence_num once; dropping a heartbeat breaks both counters.
    assert feed.stats.gaps == 3 and feed.stats.missed == 3
    gaps = [r for r in caplog.records if getattr(r, "event", None) == "feed.gap"]
    assert {r.counter for r in gaps} == {"sequence_num", "heartbeat_counter"}


async def test_silent_heartbeats_make_it_reconnect_and_resubscribe():
    async with FakeCoinbase(("silent",)) as fake:
        feed, got = provider(fake.url, heartbeat_timeout=0.3), Collector()
        async with running(feed, got):
            await until(
                lambda: len(fake.connections) >= 2 and len(fake.connections[1].received) >= 2,
                what="a second connection with its subscriptions",
            )
            await until(lambda: len(got.ticks) >= 2 * TICKS_PER_SESSION, what="the ticks of the second session")
    assert feed.stats.silences >= 1
    assert fake.connections[1].received == fake.connections[0].received
    # Sequence numbers restart with each connection: that is not a gap.
    assert feed.stats.gaps == 0


async def test_failed_connections_back_off_with_jitter_and_healthy_ones_reset_it(caplog):
    draws: list[float] = []

    def rng() -> float:
        draws.append(0.5)
        return 0.5

    caplog.set_level(logging.INFO, logger="tickmesh.services.market_feed.connection")
    async with FakeCoinbase(("refuse", "refuse", "silent")) as fake:
        backoff = fast_backoff(rng)
        feed, got = provider(fake.url, backoff=backoff), Collector()
        async with running(feed, got):
            await until(lambda: len(got.ticks) >= TICKS_PER_SESSION, what="ticks after two refusals")
    waits = [r.delay_s for r in caplog.records if getattr(r, "event", None) == "feed.reconnect_wait"]
    # Full jitter: half of base * 2**(failures - 1) with this rng, under the cap.
    assert waits[:2] == [0.025, 0.05]
    assert draws and backoff.failures == 0
    assert all(len(c.received) == 2 for c in fake.connections)


async def test_nothing_listening_is_retried_not_fatal():
    # A port nobody listens on: connection refused, again and again, without raising.
    async with FakeCoinbase() as fake:
        url = fake.url
    feed, got = provider(url), Collector()
    async with running(feed, got) as task:
        await until(lambda: feed.stats.attempts >= 3, what="three attempts")
        assert not task.done()
    assert feed.backoff.failures >= 2 and feed.stats.connected == 0


def test_session_ignores_garbage_and_unknown_types_without_raising():
    stats = ProviderStats()
    s = CoinbaseSession(PRODUCTS, now=0.0, heartbeat_timeout=3.0, stats=stats)
    for frame in (
        "not json",
        "[1,2]",
        '{"channel":"l2_data","events":[]}',
        '{"type":"brand_new"}',
        '{"channel":"ticker","events":[{"type":"update","tickers":[{"product_id":"BTC-USD","price":"nope"}]}]}',
    ):
        assert s.receive(frame, now=1.0, recv_us=1) == []
    assert stats.ignored == 4
    s.receive('{"type":"error","message":"failed to subscribe"}', now=1.0, recv_us=1)
    assert stats.errors == 1


def test_heartbeats_move_the_liveness_deadline():
    s = CoinbaseSession(PRODUCTS, now=100.0, heartbeat_timeout=3.0, stats=ProviderStats())
    assert s.deadline == 106.0
    s.receive('{"channel":"heartbeats","sequence_num":1,"events":[{"heartbeat_counter":"7"}]}', now=101.0, recv_us=1)
    assert s.deadline == 104.0 and s.healthy
    s.receive('{"channel":"ticker","sequence_num":2,"events":[]}', now=103.5, recv_us=1)
    assert s.deadline == 104.0  # only heartbeats prove liveness
