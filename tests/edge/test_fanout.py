"""Outbox conflation and bounds, and the hub's encode-once fan-out, without sockets."""

import orjson

from tickmesh.edge.frames import batch
from tickmesh.edge.hub import Hub
from tickmesh.edge.outbox import Outbox


def test_state_frames_conflate_in_place_and_events_keep_order():
    box = Outbox()
    box.push_state("prices:AAPL", b"a1")
    box.push(b"e1")
    box.push_state("prices:AAPL", b"a2")
    box.push_state("prices:MSFT", b"m1")
    box.push(b"e2")
    assert box.drain() == [b"a2", b"e1", b"m1", b"e2"]
    assert box.conflated == 1
    assert box.drain() == []


def test_wakes_once_per_batch():
    wakes = []
    box = Outbox(on_ready=lambda: wakes.append(1))
    box.push(b"a")
    box.push(b"b")
    box.push_state("k", b"c")
    assert len(wakes) == 1
    box.drain()
    box.push(b"d")
    assert len(wakes) == 2


def test_event_overflow_is_reported_once_and_nothing_is_dropped_silently():
    overflows = []
    box = Outbox(max_frames=3, on_overflow=lambda: overflows.append(1))
    assert all(box.push(b"x") for _ in range(3))
    assert box.push(b"lost") is False
    assert box.push(b"lost again") is False
    assert box.overflowed and overflows == [1]


def test_state_frames_never_overflow_while_their_slot_is_pending():
    box = Outbox(max_frames=2)
    for i in range(1000):
        assert box.push_state("prices:AAPL", b"%d" % i)
    assert box.drain() == [b"999"]


def test_hub_frames_once_per_channel_name_and_counts_subjects():
    hub = Hub()
    a, b, c = Outbox(), Outbox(), Outbox()
    assert hub.add("tm.tick.AAPL", "prices:AAPL", a, conflate=True) is True
    assert hub.add("tm.tick.AAPL", "prices:AAPL", b, conflate=True) is False
    assert hub.publish("tm.tick.AAPL", 5, b'{"p":"1.00"}') == 2
    fa, fb = a.drain(), b.drain()
    assert fa == fb and fa[0] is fb[0]  # the same bytes object: encoded once
    assert orjson.loads(fa[0]) == {"op": "msg", "ch": "prices:AAPL", "seq": 5, "data": {"p": "1.00"}}
    assert hub.publish("tm.tick.MSFT", 1, b"{}") == 0 and c.drain() == []
    assert hub.remove("tm.tick.AAPL", "prices:AAPL", a) is False
    assert hub.remove("tm.tick.AAPL", "prices:AAPL", a) is False
    assert hub.remove("tm.tick.AAPL", "prices:AAPL", b) is True
    assert hub.subjects() == []


def test_batch_is_a_json_array_of_frames():
    assert batch([b'{"a":1}']) == b'{"a":1}'
    assert orjson.loads(batch([b'{"a":1}', b'{"b":2}'])) == [{"a": 1}, {"b": 2}]
