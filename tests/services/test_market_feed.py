import asyncio
import signal
import sys
from decimal import Decimal

import nats
import orjson

from tickmesh.contracts import messages
from tickmesh.contracts.channels import TICK_WILDCARD, channel_for_subject
from tickmesh.contracts.instruments import instruments
from tickmesh.services.market_feed.synthetic import SyntheticMarket
from tests.support.procs import Proc, base_env


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
    proc = Proc([sys.executable, "-m", "tickmesh", "service", "market-feed"],
                base_env(NATS_URL=nats_server.url, FEED_SYMBOLS="AAPL,BRK.B", FEED_RATE="400"),
                tmp_path / "feed.log")
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


def test_a_bad_setting_is_a_clear_error_not_a_traceback(tmp_path):
    proc = Proc([sys.executable, "-m", "tickmesh", "service", "market-feed"],
                base_env(FEED_SYMBOLS="AAPL,NOT*REAL"), tmp_path / "feed.log")
    assert proc.proc.wait(10) == 2
    out = proc.output()
    assert "FEED_SYMBOLS" in out and "Traceback" not in out
