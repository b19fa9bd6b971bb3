"""Outbox conflation and bounds, and the hub's encode-once fan-out, without sockets."""

import msgpack
import orjson

from tickmesh.edge.frames import JSON, MSGPACK
from tickmesh.edge.hub import Hub
from tickmesh.edge.outbox import Outbox, Recorder


def test_state_frames_conflate_in_place_and_events_keep_order():
    box = Outbox(conflate_after=0)
    box.push_state("prices:AAPL", b"a1")
    box.push(b"e1")
    box.push_state("prices:AAPL", b"a2")
    box.push_state("prices:MSFT", b"m1")
    box.push(b"e2")
    assert box.drain() == [b"a2", b"e1", b"m1", b"e2"]
    assert box.conflated == 1
    assert box.drain() == []


def test_a_client_that_keeps_up_gets_every_state_frame_and_a_lagging_one_the_latest():
    box = Outbox(conflate_after=3)
    for i in range(3):
        box.push_state("prices:AAPL", b"%d" % i)
    assert box.drain() == [b"0", b"1", b"2"] and box.conflated == 0
    for i in range(10):
        box.push_state("prices:AAPL", b"%d" % i)
    assert box.drain() == [b"0", b"1", b"9"] and box.conflated == 7


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
    box = Outbox(max_frames=2, conflate_after=0)
    for i in range(1000):
        assert box.push_state("prices:AAPL", b"%d" % i)
    assert box.drain() == [b"999"]


def test_hub_frames_once_per_channel_name_and_codec_and_counts_subjects():
    hub = Hub()
    a, b, c, m = Outbox(), Outbox(), Outbox(), Outbox(codec=MSGPACK.index)
    assert hub.add("tm.tick.AAPL", "prices:AAPL", a, conflate=True) is True
    assert hub.add("tm.tick.AAPL", "prices:AAPL", b, conflate=True) is False
    hub.add("tm.tick.AAPL", "prices:AAPL", m, conflate=True)
    assert hub.publish("tm.tick.AAPL", 5, b'{"p":"1.00"}') == 3
    fa, fb = a.drain(), b.drain()
    assert fa == fb and fa[0] is fb[0]  # the same bytes object: encoded once
    assert orjson.loads(fa[0]) == {"op": "msg", "ch": "prices:AAPL", "seq": 5, "data": {"p": "1.00"}}
    assert msgpack.unpackb(m.drain()[0]) == {"op": "msg", "ch": "prices:AAPL", "seq": 5, "data": {"p": "1.00"}}
    assert hub.publish("tm.tick.MSFT", 1, b"{}") == 0 and c.drain() == []
    assert hub.remove("tm.tick.AAPL", "prices:AAPL", a) is False
    assert hub.remove("tm.tick.AAPL", "prices:AAPL", a) is False
    assert hub.remove("tm.tick.AAPL", "prices:AAPL", m) is False
    assert hub.remove("tm.tick.AAPL", "prices:AAPL", b) is True
    assert hub.subjects() == []


def test_state_subjects_never_go_backwards_and_keep_a_snapshot():
    hub = Hub()
    a = Outbox()
    hub.add("tm.tick.AAPL", "prices:AAPL", a, conflate=True)
    hub.publish("tm.tick.AAPL", 10, b'"ten"')
    hub.publish("tm.tick.AAPL", 9, b'"nine"')
    hub.seed("tm.tick.AAPL", (8, b'"eight"'))
    assert [orjson.loads(f)["seq"] for f in a.drain()] == [10]
    assert hub.snapshot("tm.tick.AAPL") == (10, b'"ten"')
    assert hub.stale_dropped == 1


def test_the_stream_is_asked_for_a_snapshot_once_per_subject_while_it_is_subscribed():
    hub = Hub()
    assert hub.needs_snapshot("tm.tick.MSFT")
    hub.add("tm.tick.MSFT", "prices:MSFT", Outbox(), conflate=True)
    hub.seed("tm.tick.MSFT", None)  # the stream had nothing
    assert not hub.needs_snapshot("tm.tick.MSFT") and hub.snapshot("tm.tick.MSFT") is None
    hub.reset_seeds()  # NATS came back: the stream may hold what the hub missed
    assert hub.needs_snapshot("tm.tick.MSFT")


def test_event_frames_carry_positions_to_a_recorder_and_swap_to_the_outbox():
    hub = Hub()
    rec, box = Recorder(JSON.index), Outbox()
    hub.add("tm.user.a.trades", "trades", rec, conflate=False)
    hub.publish("tm.user.a.trades", 7, b"{}")
    hub.replace("tm.user.a.trades", "trades", rec, box)
    hub.publish("tm.user.a.trades", 8, b"{}")
    assert [seq for seq, _ in rec.frames] == [7]
    assert [orjson.loads(f)["seq"] for f in box.drain()] == [8]


def test_max_hz_throttles_a_channel_and_the_last_value_still_goes_out():
    due = []
    box = Outbox(on_defer=due.append, conflate_after=0)
    box.throttle("prices:AAPL", 2.0)  # at most one frame per 0.5 s
    assert box.push_state("prices:AAPL", b"1", now=10.0)
    assert box.push_state("prices:AAPL", b"2", now=10.1)
    assert box.push_state("prices:AAPL", b"3", now=10.2)
    assert box.drain() == [b"1"] and due == [10.5]
    assert box.release_due(10.4) == 10.5
    assert box.release_due(10.5) is None
    assert box.drain() == [b"3"]


def test_batches_per_codec():
    assert JSON.batch([b'{"a":1}']) == b'{"a":1}'
    assert orjson.loads(JSON.batch([b'{"a":1}', b'{"b":2}'])) == [{"a": 1}, {"b": 2}]
    for n in (2, 15, 16, 300):
        parts = [msgpack.packb({"i": i}) for i in range(n)]
        assert msgpack.unpackb(MSGPACK.batch(parts)) == [{"i": i} for i in range(n)]
