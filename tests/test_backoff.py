"""Reconnection timing: jittered exponential backoff under the provider's connection-rate floor."""

from __future__ import annotations

import pytest

from tickmesh.backoff import Backoff


def test_healthy_reconnects_wait_only_for_the_rate_floor():
    b = Backoff(base=0.5, cap=30, min_interval=1.0, rng=lambda: 0.9)
    assert b.delay(0.0) == 0.0  # first attempt: at once
    b.attempt(0.0)
    assert b.delay(0.25) == pytest.approx(0.75)
    assert b.delay(5.0) == 0.0


def test_failures_grow_the_ceiling_exponentially_up_to_the_cap():
    b = Backoff(base=0.5, cap=4.0, min_interval=0.0, rng=lambda: 1.0)
    ceilings = []
    for _ in range(6):
        b.failed()
        ceilings.append(b.ceiling())
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    b.succeeded()
    assert b.ceiling() == 0.0 and b.delay(100.0) == 0.0


def test_delay_is_full_jitter_between_zero_and_the_ceiling():
    draws = iter([0.0, 0.25, 0.999])
    b = Backoff(base=1.0, cap=60, min_interval=0.0, rng=lambda: next(draws))
    for _ in range(3):
        b.failed()  # ceiling 4 s
    assert [b.delay(0.0) for _ in range(3)] == [0.0, 1.0, pytest.approx(3.996)]


def test_the_rate_floor_holds_even_when_jitter_draws_zero():
    b = Backoff(base=0.5, cap=30, min_interval=1.0, rng=lambda: 0.0)
    b.attempt(10.0)
    b.failed()
    assert b.delay(10.1) == pytest.approx(0.9)


def test_bad_bounds_are_refused():
    with pytest.raises(ValueError):
        Backoff(base=2.0, cap=1.0)
