"""The edge's memory of recent events: it answers a recovery only when it holds every message."""

from hypothesis import given, settings
from hypothesis import strategies as st

from tickmesh.edge.recent import RecentEvents


def test_answers_only_after_the_feed_started_and_everything_since_a_position():
    r = RecentEvents(max_bytes=1_000)
    assert r.after("S", "tm.news", 5) is None  # the feed has not started
    r.start("S", last_seq=10)
    assert r.after("S", "tm.news", 9) is None  # 10 was stored before the feed: not held
    assert r.after("S", "tm.news", 10) == []
    for seq in (11, 12, 14):
        r.add("S", "tm.news", seq, b"n%d" % seq)
    r.add("S", "tm.user.a.trades", 13, b"t13")
    assert r.after("S", "tm.news", 11) == [(12, b"n12"), (14, b"n14")]
    assert r.after("S", "tm.user.a.trades", 10) == [(13, b"t13")]
    r.add("S", "tm.news", 12, b"again")  # a redelivery is ignored
    assert r.after("S", "tm.news", 10) == [(11, b"n11"), (12, b"n12"), (14, b"n14")]


def test_eviction_keeps_the_promise_and_a_recreated_stream_is_forgotten():
    r = RecentEvents(max_bytes=10)
    r.start("S", last_seq=0)
    for seq in range(1, 8):
        r.add("S", "a", seq, b"xx")  # 2 bytes each: 5 fit
    assert r.bytes == 10
    assert r.after("S", "a", 1) is None  # 2 was evicted
    assert r.after("S", "a", 2) == [(s, b"xx") for s in range(3, 8)]
    r.start("S", last_seq=100)
    assert r.after("S", "a", 2) is None and r.bytes == 0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from("abc"), st.integers(1, 30)), max_size=60), st.integers(1, 80), st.integers(0, 70)
)
def test_a_replay_from_memory_is_exactly_what_the_stream_holds_after_the_position(writes, budget, position):
    r = RecentEvents(max_bytes=budget)
    r.start("S", last_seq=0)
    stream: list[tuple[int, str, bytes]] = []
    for seq, (subject, size) in enumerate(writes, start=1):
        payload = bytes(size)
        stream.append((seq, subject, payload))
        r.add("S", subject, seq, payload)
        assert r.bytes <= budget
    for subject in "abc":
        got = r.after("S", subject, position)
        if got is not None:
            assert got == [(seq, p) for seq, s, p in stream if s == subject and seq > position]
