"""The pipeline core: synchronous, no sockets, time passed in."""

from __future__ import annotations

import pytest

from tickmesh.contracts import messages
from tickmesh.services.market_feed.normalise import Tick
from tickmesh.services.market_feed.pipeline import Pipeline

from .util import T0, tick


def lasts(ticks: list[Tick]) -> list[str]:
    return [t.last for t in ticks]


def test_new_ticks_pass_through_unchanged():
    p = Pipeline()
    a, b = tick(), tick(last="187.21", ts=T0 + 1)
    assert p.offer(a, now=0) == [a]
    assert p.offer(b, now=0) == [b]


def test_exact_duplicates_are_dropped_even_when_not_the_latest_at_that_time():
    p = Pipeline()
    a, b = tick(last="187.20"), tick(last="187.21")  # two trades in the same microsecond
    assert lasts(p.offer(a, now=0) + p.offer(b, now=0)) == ["187.20", "187.21"]
    assert p.offer(a, now=1) == [] and p.offer(b, now=1) == []
    assert p.stats.duplicates == 2


def test_out_of_order_ticks_are_dropped_per_symbol():
    p = Pipeline()
    p.offer(tick(ts=T0 + 10), now=0)
    assert p.offer(tick(last="1", ts=T0 + 5), now=0) == []
    assert p.offer(tick(symbol="MSFT", ts=T0 + 5), now=0) != []  # other symbols are independent
    assert p.offer(tick(last="2", ts=T0 + 11), now=0) != []
    assert p.stats.out_of_order == 1


def test_symbols_outside_the_universe_are_dropped():
    p = Pipeline(symbols={"AAPL"})
    assert p.offer(tick(symbol="DOGE-USDX"), now=0) == []
    assert p.stats.unknown_symbol == 1


def test_a_silent_symbol_goes_stale_once_and_the_next_tick_clears_it():
    p = Pipeline(stale_after=5.0)
    a = tick()
    p.offer(a, now=100.0)
    assert p.next_deadline() == 105.0
    assert p.poll(now=104.9) == []
    [mark] = p.poll(now=105.0)
    assert mark.stale and mark.last == a.last and mark.ts == a.ts
    assert mark.to_message()["stale"] is True
    messages.schema("tick").validate(mark.to_message())
    assert p.poll(now=200.0) == [] and p.next_deadline() is None  # marked once
    [fresh] = p.offer(tick(last="187.30", ts=T0 + 1), now=201.0)
    assert not fresh.stale and "stale" not in fresh.to_message() and not p.is_stale("AAPL")
    assert p.next_deadline() == 206.0


def test_stale_is_per_symbol():
    p = Pipeline(stale_after=5.0)
    p.offer(tick(symbol="AAPL"), now=0.0)
    p.offer(tick(symbol="MSFT"), now=3.0)
    assert [t.symbol for t in p.poll(now=5.0)] == ["AAPL"]
    assert [t.symbol for t in p.poll(now=8.0)] == ["MSFT"]


def test_stale_off_by_default():
    p = Pipeline()
    p.offer(tick(), now=0.0)
    assert p.poll(now=1e9) == [] and p.next_deadline() is None


def test_rate_limit_keeps_the_latest_value_and_sends_the_trailing_edge():
    p = Pipeline(max_hz=2.0)  # one tick per 0.5 s per symbol
    assert lasts(p.offer(tick(last="1", ts=T0 + 1), now=10.0)) == ["1"]
    assert p.offer(tick(last="2", ts=T0 + 2), now=10.1) == []
    assert p.offer(tick(last="3", ts=T0 + 3), now=10.2) == []  # replaces "2": latest wins
    assert p.next_deadline() == 10.5
    assert p.poll(now=10.49) == []
    assert lasts(p.poll(now=10.5)) == ["3"]  # the last value of the burst still goes out
    assert p.poll(now=11.0) == []
    assert lasts(p.offer(tick(last="4", ts=T0 + 4), now=11.2)) == ["4"]  # quiet long enough: at once
    assert p.stats.conflated == 1


def test_rate_limit_is_per_symbol():
    p = Pipeline(max_hz=1.0)
    p.offer(tick(symbol="AAPL", ts=T0 + 1), now=0.0)
    assert p.offer(tick(symbol="MSFT", ts=T0 + 1), now=0.1) != []


def test_a_pending_tick_goes_out_before_its_symbol_can_turn_stale():
    p = Pipeline(max_hz=4.0, stale_after=0.5)
    p.offer(tick(last="1", ts=T0 + 1), now=0.0)
    p.offer(tick(last="2", ts=T0 + 2), now=0.1)
    assert p.next_deadline() == 0.25
    assert lasts(p.poll(now=0.25)) == ["2"]
    assert p.next_deadline() == pytest.approx(0.6)
    [mark] = p.poll(now=0.6)
    assert mark.stale and mark.last == "2"


def test_many_symbols_keep_their_own_deadlines():
    p = Pipeline(max_hz=10.0, stale_after=1.0)
    for i in range(100):
        p.offer(tick(symbol=f"S{i}", ts=T0 + 1), now=i / 1000)
        p.offer(tick(symbol=f"S{i}", last="9", ts=T0 + 2), now=i / 1000 + 0.05)
    due = p.next_deadline()
    assert due == pytest.approx(0.1)
    assert [t.symbol for t in p.poll(now=due)] == ["S0"]
    assert len(p.poll(now=0.2)) == 99
    assert len([t for t in p.poll(now=2.0) if t.stale]) == 100 and p.next_deadline() is None


def test_settings_that_cannot_hold_their_promises_are_refused():
    with pytest.raises(ValueError):
        Pipeline(stale_after=-1)
    with pytest.raises(ValueError):
        Pipeline(stale_after=0.5, max_hz=1.0)  # a held tick could outlive the stale deadline
