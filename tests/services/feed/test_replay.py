"""The replay provider on a fake clock: NDJSON and CSV, speed scaling, looping (no real sleeping)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tickmesh.contracts import messages
from tickmesh.services.market_feed.replay import ReplayClock, ReplayProvider, read_records
from tickmesh.services.market_feed.settings import FeedSettings

from .util import Collector

SAMPLES = Path(FeedSettings().replay_path()).parent
START = 1_800_000_000.0  # the fake wall clock at playback start


class FakeTime:
    """A wall clock that only moves when the code under test sleeps."""

    def __init__(self, now: float = START) -> None:
        self.now = now
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


NDJSON = (
    '{"symbol":"AAPL","last":"187.20","bid":"187.19","ask":"187.21","size":"100","ts":1000000}\n'
    "\n"
    '{"symbol":"MSFT","last":415.30,"ts":3000000}\n'
    "not json\n"
    '{"symbol":"AAPL","last":"187.25","ts":5000000}\n'
)
CSV = (
    "symbol,last,bid,ask,size,ts\n"
    "AAPL,187.20,187.19,187.21,100,1000000\n"
    "MSFT,415.30,,,,3000000\n"
    "AAPL,187.25,,,,5000000\n"
)


async def play(path: Path, *, speed: float, loop: bool = False, until: int | None = None, **kw):
    fake, got = FakeTime(), Collector()
    feed = ReplayProvider(path, speed=speed, loop=loop, clock=fake.clock, sleep=fake.sleep, **kw)
    if until is None:
        await feed.run(got.emit)
    else:
        task = asyncio.create_task(feed.run(got.emit))
        while len(got.ticks) < until:
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return feed, got.ticks, fake


@pytest.mark.parametrize("name,text", [("t.ndjson", NDJSON), ("t.csv", CSV)])
async def test_ndjson_and_csv_play_the_same_ticks_rebased_to_now(tmp_path, name, text):
    feed, ticks, _ = await play(write(tmp_path / name, text), speed=1.0)
    assert [(t.symbol, t.last, t.bid) for t in ticks] == [
        ("AAPL", "187.20", "187.19"),
        ("MSFT", "415.30", None),
        ("AAPL", "187.25", None),
    ]
    start_us = int(START * 1e6)
    assert [t.ts for t in ticks] == [start_us, start_us + 2_000_000, start_us + 4_000_000]
    assert all(t.provider == "replay" and t.ingest_ts == t.ts for t in ticks)
    assert feed.passes == 1


async def test_bad_lines_are_skipped_and_counted(tmp_path):
    feed, ticks, _ = await play(write(tmp_path / "t.ndjson", NDJSON), speed=1.0)
    assert len(ticks) == 3 and feed.stats.ignored == 1


@pytest.mark.parametrize("speed,gaps", [(1.0, [2.0, 2.0]), (10.0, [0.2, 0.2]), (0.5, [4.0, 4.0])])
async def test_speed_scales_the_gaps_between_ticks(tmp_path, speed, gaps):
    _, ticks, fake = await play(write(tmp_path / "t.csv", CSV), speed=speed)
    assert fake.slept == pytest.approx(gaps)
    assert [(b.ts - a.ts) / 1e6 for a, b in zip(ticks, ticks[1:], strict=False)] == pytest.approx(gaps)


async def test_speed_zero_plays_as_fast_as_possible_stamped_now(tmp_path):
    _, ticks, fake = await play(write(tmp_path / "t.csv", CSV), speed=0)
    assert all(s == 0 for s in fake.slept)
    assert {t.ts for t in ticks} == {int(START * 1e6)}


async def test_looping_keeps_time_moving_forward(tmp_path):
    feed, ticks, _ = await play(write(tmp_path / "t.csv", CSV), speed=1.0, loop=True, until=7)
    ts = [t.ts for t in ticks]
    assert ts == sorted(ts) and len(set(ts)) == len(ts)
    # Second pass starts one average gap (2 s) after the first pass's last tick.
    assert (ts[3] - ts[2]) == 2_000_000
    assert [t.last for t in ticks[:6]] == ["187.20", "415.30", "187.25"] * 2
    assert feed.passes >= 2


async def test_symbols_filter_the_file(tmp_path):
    _, ticks, _ = await play(write(tmp_path / "t.csv", CSV), speed=0, symbols={"MSFT"})
    assert [t.symbol for t in ticks] == ["MSFT"]


async def test_the_bundled_samples_are_valid_contract_ticks():
    for name in ("ticks.ndjson", "ticks.csv"):
        records = read_records(SAMPLES / name)
        assert len(records) >= 100
        _, ticks, _ = await play(SAMPLES / name, speed=0)
        assert len(ticks) == len(records)
        for t in ticks:
            messages.schema("tick").validate(t.to_message())


def test_clock_maps_file_time_to_playback_time():
    records = read_records(SAMPLES / "ticks.csv")
    c = ReplayClock(records, speed=4.0, start=100.0)
    assert c.stamp(records[0], 0) == 100_000_000
    span = records[-1].ts - records[0].ts
    assert c.stamp(records[-1], 0) == 100_000_000 + int(span / 4)
    assert c.stamp(records[0], 1) > c.stamp(records[-1], 0)
