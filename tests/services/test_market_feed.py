import asyncio
import signal
import sys
import time
from decimal import Decimal

import nats
import pytest

from tests.services.feed.fakes import FakeBinance
from tests.support.procs import Proc, base_env
from tests.support.timing import t
from tickmesh import streams
from tickmesh.contracts import messages
from tickmesh.contracts.channels import TICK_WILDCARD, channel_for_subject, tick_subject
from tickmesh.contracts.instruments import instruments
from tickmesh.services.market_feed.synthetic import SyntheticMarket


def test_default_universe_covers_the_promised_symbols():
    universe = instruments()
    assert len(universe) >= 45
    for sym in ("AAPL", "MSFT", "NVDA", "BRK.B", "BTC-USD", "ETH-USD"):
        assert sym in universe


def test_synthetic_ticks_are_contract_valid_and_plausible():
    symbols = tuple(instruments())
    market = SyntheticMarket(symbols, rate=1000, seed=7, now=1_795_000_000.0)
    seen = set()
    now = 1_795_000_000.0
    for _ in range(5000):
        now += market.interval()
        t = market.next_tick(now)
        messages.schema("tick").validate(t)
        bid, ask, last = Decimal(t["bid"]), Decimal(t["ask"]), Decimal(t["last"])
        assert 0 < bid < ask and bid <= last <= ask
        ref = instruments()[t["symbol"]].reference_price
        assert ref / 2 <= last <= ref * 2
        tick_size = instruments()[t["symbol"]].tick_size
        assert last % tick_size == 0
        seen.add(t["symbol"])
    assert len(seen) > len(symbols) * 0.8


def test_the_same_seed_gives_the_same_market():
    a = SyntheticMarket(("AAPL", "BTC-USD"), rate=10, seed=3, now=0.0)
    b = SyntheticMarket(("AAPL", "BTC-USD"), rate=10, seed=3, now=0.0)
    assert [a.next_tick(1.0 + i) for i in range(20)] == [b.next_tick(1.0 + i) for i in range(20)]


async def test_service_publishes_valid_ticks_with_increasing_seq_and_stops_on_sigterm(nats_server, tmp_path):
    nc = await nats.connect(nats_server.url)
    got: list = []

    async def collect(msg):
        got.append(msg)

    sub = await nc.subscribe(TICK_WILDCARD, cb=collect)
    proc = Proc(
        [sys.executable, "-m", "tickmesh", "service", "market-feed"],
        base_env(NATS_URL=nats_server.url, FEED_SYMBOLS="AAPL,BRK.B", FEED_RATE="400"),
        tmp_path / "feed.log",
    )
    try:
        for _ in range(100):
            if len(got) >= 200:
                break
            await asyncio.sleep(0.1)
        assert len(got) >= 200, proc.output()
        last_seq: dict[str, int] = {}
        for m in got:
            tick = messages.decode("tick", m.data)
            assert channel_for_subject(m.subject).arg == tick["symbol"]
            seq = int(m.headers["Tm-Seq"])
            assert seq > last_seq.get(tick["symbol"], 0)
            last_seq[tick["symbol"]] = seq
        assert set(last_seq) == {"AAPL", "BRK.B"}
    finally:
        code = proc.stop(signal.SIGTERM, timeout=5)
        await sub.unsubscribe()
        await nc.close()
    assert code == 0, proc.output()
    assert "feed.stopped" in proc.output()


@pytest.mark.parametrize(
    "env,name",
    [
        ({"FEED_SYMBOLS": "AAPL,NOT*REAL"}, "FEED_SYMBOLS"),
        ({"FEED_PROVIDER": "bloomberg"}, "FEED_PROVIDER"),
        ({"FEED_PROVIDER": "replay", "FEED_REPLAY_SPEED": "-1"}, "FEED_REPLAY_SPEED"),
        ({"FEED_PROVIDER": "replay", "FEED_REPLAY_FILE": "/nonexistent/ticks.csv"}, "FEED_REPLAY_FILE"),
        ({"FEED_PROVIDER": "binance", "FEED_SYMBOLS": "AAPL"}, "FEED_SYMBOLS"),
        ({"FEED_PROVIDER": "coinbase", "FEED_COINBASE_URL": "https://example.invalid"}, "FEED_COINBASE_URL"),
        ({"FEED_STALE_AFTER_S": "soon"}, "FEED_STALE_AFTER_S"),
        ({"FEED_STALE_AFTER_S": "0.5", "FEED_MAX_HZ_PER_SYMBOL": "1"}, "FEED_STALE_AFTER_S"),
    ],
)
def test_a_bad_setting_is_a_clear_error_not_a_traceback(tmp_path, env, name):
    proc = Proc([sys.executable, "-m", "tickmesh", "service", "market-feed"], base_env(**env), tmp_path / "feed.log")
    assert proc.proc.wait(t(10)) == 2
    out = proc.output()
    assert name in out and "Traceback" not in out


class Ticks:
    """Every tick published on NATS, decoded, in arrival order."""

    def __init__(self) -> None:
        self.got: list[dict] = []

    async def collect(self, msg) -> None:
        self.got.append(messages.decode("tick", msg.data))

    async def wait(self, cond, what: str, proc: Proc, timeout: float = 15) -> None:
        deadline = time.monotonic() + t(timeout)
        while not cond(self.got):
            assert time.monotonic() < deadline, f"no {what}: {proc.output()[-3000:]}"
            await asyncio.sleep(0.05)


def feed_proc(tmp_path, nats_url: str, **env: str) -> Proc:
    return Proc(
        [sys.executable, "-m", "tickmesh", "service", "market-feed"],
        base_env(NATS_URL=nats_url, **env),
        tmp_path / "feed.log",
    )


async def test_replay_plays_the_bundled_sample_live_and_keeps_snapshots_in_jetstream(nats_server, tmp_path):
    nc = await nats.connect(nats_server.url)
    ticks = Ticks()
    sub = await nc.subscribe(TICK_WILDCARD, cb=ticks.collect)
    started_us = time.time_ns() // 1000
    proc = feed_proc(tmp_path, nats_server.url, FEED_PROVIDER="replay", FEED_REPLAY_SPEED="50")
    try:
        await ticks.wait(
            lambda got: {"AAPL", "BTC-USD", "EUR/USD", "BRK.B"} <= {x["symbol"] for x in got},
            "ticks for the sample's symbols",
            proc,
        )
        assert all(x["provider"] == "replay" and x["ts"] >= started_us for x in ticks.got)  # re-based to now
        assert Decimal(next(x["last"] for x in ticks.got if x["symbol"] == "BTC-USD")) > 60000
        js = nc.jetstream()
        snapshot = await js.get_last_msg(streams.TICKS, tick_subject("BRK.B"))
        assert messages.decode("tick", snapshot.data)["symbol"] == "BRK.B"
    finally:
        code = proc.stop(signal.SIGTERM, timeout=5)
        await sub.unsubscribe()
        await nc.close()
    assert code == 0, proc.output()


async def test_replay_of_a_csv_that_ends_marks_its_symbols_stale(nats_server, tmp_path):
    path = tmp_path / "short.csv"
    path.write_text(
        "symbol,last,bid,ask,size,ts\n"
        "AAPL,187.20,187.19,187.21,100,1000000\n"
        "MSFT,415.30,415.29,415.31,5,1100000\n"
        "AAPL,187.20,187.19,187.21,100,1000000\n"  # an exact repeat: dropped
        "AAPL,187.22,187.21,187.23,200,1200000\n"
    )
    nc = await nats.connect(nats_server.url)
    ticks = Ticks()
    sub = await nc.subscribe(TICK_WILDCARD, cb=ticks.collect)
    proc = feed_proc(
        tmp_path,
        nats_server.url,
        FEED_PROVIDER="replay",
        FEED_REPLAY_FILE=str(path),
        FEED_REPLAY_SPEED="100",
        FEED_REPLAY_LOOP="false",
        FEED_STALE_AFTER_S="0.5",
    )
    try:
        await ticks.wait(lambda got: sum(1 for x in got if x.get("stale")) >= 2, "stale marks", proc)
    finally:
        code = proc.stop(signal.SIGTERM, timeout=5)
        await sub.unsubscribe()
        await nc.close()
    assert code == 0, proc.output()
    fresh = [(x["symbol"], x["last"]) for x in ticks.got if not x.get("stale")]
    assert fresh == [("AAPL", "187.20"), ("MSFT", "415.30"), ("AAPL", "187.22")]
    stale = {x["symbol"]: x["last"] for x in ticks.got if x.get("stale")}
    assert stale == {"AAPL": "187.22", "MSFT": "415.30"}


async def test_binance_provider_process_against_a_local_fake_exchange(nats_server, tmp_path):
    nc = await nats.connect(nats_server.url)
    ticks = Ticks()
    sub = await nc.subscribe(TICK_WILDCARD, cb=ticks.collect)
    async with FakeBinance(("shutdown", "silent")) as fake:
        proc = feed_proc(
            tmp_path,
            nats_server.url,
            FEED_PROVIDER="binance",
            FEED_BINANCE_URL=fake.url,
            FEED_SYMBOLS="BTC-USDT,ETH-USDT",
        )
        try:
            await ticks.wait(lambda got: len(got) >= 7 and len(fake.connections) >= 2, "ticks and a reconnect", proc)
        finally:
            code = proc.stop(signal.SIGTERM, timeout=5)
            await sub.unsubscribe()
            await nc.close()
    assert code == 0, proc.output()
    assert {x["symbol"] for x in ticks.got} == {"BTC-USDT", "ETH-USDT"}
    assert "67250.02000000" in {x["last"] for x in ticks.got}
    assert fake.connections[1].received == fake.connections[0].received
