"""The sans-I/O session core, driven with plain calls: no sockets, no event loop."""

import json

import orjson
import pytest
from hypothesis import given, settings, strategies as st

from tickmesh.contracts.codes import ErrorCode
from tickmesh.edge.session import Close, Session, Subscribe, Unsubscribe


def make(**kw):
    kw.setdefault("channel_exists", lambda ch: ch.arg != "NOPE")
    return Session(conn_id="c1", now=0.0, **kw)


def frames(out):
    return [orjson.loads(o) for o in out if isinstance(o, bytes)]


def send(session, frame, now=1.0):
    session.receive_frame(frame if isinstance(frame, (str, bytes)) else orjson.dumps(frame), now)
    return session.take()


def test_sub_carries_its_reply_for_the_io_layer_to_order():
    s = make()
    [out] = send(s, {"op": "sub", "id": 1, "ch": "prices:BRK.B"})
    assert out == Subscribe("prices:BRK.B", "tm.tick.BRK_2EB", True, b'{"op":"ok","id":1}')


def test_unsub_carries_its_reply():
    s = make()
    send(s, {"op": "sub", "id": 1, "ch": "prices:AAPL"})
    [out] = send(s, {"op": "unsub", "id": "two", "ch": "prices:AAPL"})
    assert out.name == "prices:AAPL" and out.subject == "tm.tick.AAPL"
    assert orjson.loads(out.reply) == {"op": "ok", "id": "two"}


def test_ping_pong():
    assert frames(send(make(), {"op": "ping", "id": 7})) == [{"op": "pong", "id": 7}]


@pytest.mark.parametrize("raw,code", [
    (b"{nope", ErrorCode.MALFORMED_FRAME),
    (b"[1,2]", ErrorCode.MALFORMED_FRAME),
    (b'"sub"', ErrorCode.MALFORMED_FRAME),
    (b"", ErrorCode.MALFORMED_FRAME),
    (b'{"id":1}', ErrorCode.UNKNOWN_OP),
    (b'{"op":"launch","id":1}', ErrorCode.UNKNOWN_OP),
    (b'{"op":5,"id":1}', ErrorCode.UNKNOWN_OP),
    (b'{"op":"sub","id":1}', ErrorCode.INVALID_FIELD),
    (b'{"op":"sub","id":{"x":1},"ch":"prices:AAPL"}', ErrorCode.INVALID_FIELD),
    (b'{"op":"sub","id":1,"ch":"prices:*"}', ErrorCode.BAD_CHANNEL),
    (b'{"op":"sub","id":1,"ch":"prices:NOPE"}', ErrorCode.UNKNOWN_CHANNEL),
    (b'{"op":"unsub","id":1,"ch":"prices:AAPL"}', ErrorCode.NOT_SUBSCRIBED),
])
def test_bad_input_gets_a_documented_error_and_the_session_stays_usable(raw, code):
    s = make()
    out = frames(send(s, raw))
    assert len(out) == 1 and out[0]["op"] == "err" and out[0]["code"] == code
    assert s.closed is None
    assert frames(send(s, {"op": "ping", "id": 1})) == [{"op": "pong", "id": 1}]


def test_error_replies_carry_the_request_id_when_it_could_be_read():
    out = frames(send(make(), {"op": "sub", "id": 41, "ch": "prices:a"}))
    assert out[0]["id"] == 41


def test_double_subscribe_and_subscription_limit():
    s = make(max_subscriptions=2)
    send(s, {"op": "sub", "id": 1, "ch": "prices:AAPL"})
    assert frames(send(s, {"op": "sub", "id": 2, "ch": "prices:AAPL"}))[0]["code"] == ErrorCode.ALREADY_SUBSCRIBED
    send(s, {"op": "sub", "id": 3, "ch": "prices:MSFT"})
    assert frames(send(s, {"op": "sub", "id": 4, "ch": "prices:NVDA"}))[0]["code"] == ErrorCode.TOO_MANY_SUBSCRIPTIONS
    assert set(s.subscriptions) == {"prices:AAPL", "prices:MSFT"}


def test_oversized_frame_is_refused_without_parsing():
    s = make(max_frame_bytes=100)
    out = frames(send(s, b'{"op":"ping","id":1,"pad":"' + b"x" * 200 + b'"}'))
    assert out[0]["code"] == ErrorCode.FRAME_TOO_LARGE


def test_close_releases_every_subscription():
    s = make()
    send(s, {"op": "sub", "id": 1, "ch": "prices:AAPL"})
    send(s, {"op": "sub", "id": 2, "ch": "prices:MSFT"})
    s.close(4000, "bye")
    out = s.take()
    assert {o.name for o in out if isinstance(o, Unsubscribe)} == {"prices:AAPL", "prices:MSFT"}
    assert out[-1] == Close(4000, "bye")
    assert send(s, {"op": "ping", "id": 1}) == []


frame_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
client_frames = st.fixed_dictionaries(
    {},
    optional={
        "op": st.sampled_from(["sub", "unsub", "ping", "pub", "auth"]) | st.text(max_size=6),
        "id": frame_values,
        "ch": st.text(max_size=40) | st.sampled_from(["prices:AAPL", "prices:BRK.B", "prices:*", "portfolio"]) | frame_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(st.lists(client_frames.map(lambda f: json.dumps(f).encode()) | st.binary(max_size=60), max_size=12))
def test_arbitrary_frames_never_raise_and_only_grant_valid_channels(raws):
    s = make()
    for raw in raws:
        s.receive_frame(raw, 1.0)
        for out in s.take():
            if isinstance(out, bytes):
                frame = orjson.loads(out)
                assert frame["op"] in ("err", "pong")
            elif isinstance(out, Subscribe):
                assert orjson.loads(out.reply)["op"] == "ok"
                assert out.subject.startswith("tm.tick.")
                assert all(c.isalnum() or c in "._-" for c in out.subject)
