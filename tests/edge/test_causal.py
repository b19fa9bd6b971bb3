"""The causal gate (edge/causal.py), sans I/O: a portfolio value never goes out before the fill
it includes has been handed to the transport on the same connection."""

from tickmesh.edge.causal import CausalGate

P1, P2, P3 = b"p1", b"p2", b"p3"


def live_gate(floor: int = 100, hold: float = 2.0) -> CausalGate:
    gate = CausalGate(hold)
    gate.trades_requested()
    assert gate.trades_live(floor) is None
    return gate


def test_without_a_trades_subscription_nothing_is_held():
    gate = CausalGate(2.0)
    assert gate.portfolio(P1, 500, now=0.0) == P1


def test_a_value_naming_an_undelivered_fill_waits_for_it():
    gate = live_gate()
    assert gate.portfolio(P1, 105, now=0.0) is None
    assert gate.delivered_upto(103) is None  # another fill of the user: not the one named
    assert gate.delivered_upto(105) == P1
    assert gate.held is None
    assert gate.portfolio(P2, 105, now=1.0) == P2  # already delivered: no wait


def test_a_value_naming_a_fill_before_the_subscription_started_is_not_held():
    gate = live_gate(floor=100)
    assert gate.portfolio(P1, 100, now=0.0) == P1
    assert gate.portfolio(P2, 42, now=0.0) == P2
    assert gate.portfolio(P3, None, now=0.0) == P3


def test_a_newer_value_replaces_the_held_one_and_waits_for_the_higher_position():
    gate = live_gate()
    assert gate.portfolio(P1, 110, now=0.0) is None
    assert gate.portfolio(P2, None, now=0.5) is None  # a price move: still includes fill 110
    assert gate.portfolio(P3, 120, now=0.6) is None
    assert gate.delivered_upto(110) is None
    assert gate.delivered_upto(120) == P3
    assert gate.held is None


def test_the_hold_times_out_from_the_first_held_value_and_the_position_counts_as_passed():
    gate = live_gate(hold=2.0)
    assert gate.portfolio(P1, 130, now=10.0) is None
    assert gate.deadline == 12.0
    assert gate.portfolio(P2, 130, now=11.5) is None
    assert gate.deadline == 12.0  # replacing the held value does not extend the wait
    assert gate.expire(11.9) is None
    assert gate.expire(12.0) == P2
    assert gate.timeouts == 1
    assert gate.portfolio(P3, 130, now=12.1) == P3  # not waited for twice


def test_while_trades_are_being_recovered_a_named_value_waits_for_them_to_go_live():
    gate = CausalGate(2.0)
    gate.trades_requested()
    assert gate.portfolio(P1, 90, now=0.0) is None  # the floor is not known yet
    assert gate.trades_live(floor=95) == P1  # 90 is before the subscription's start
    gate2 = CausalGate(2.0)
    gate2.trades_requested()
    assert gate2.portfolio(P1, 99, now=0.0) is None
    assert gate2.trades_live(floor=95) is None  # 99 will be replayed or arrive live
    assert gate2.delivered_upto(99) == P1


def test_ending_the_trades_subscription_releases_a_held_value():
    gate = live_gate()
    assert gate.portfolio(P1, 200, now=0.0) is None
    assert gate.trades_ended() == P1
    assert gate.portfolio(P2, 300, now=0.0) == P2


def test_ending_the_portfolio_subscription_drops_the_held_value():
    gate = live_gate()
    assert gate.portfolio(P1, 200, now=0.0) is None
    gate.portfolio_ended()
    assert gate.delivered_upto(200) is None and gate.expire(10.0) is None
