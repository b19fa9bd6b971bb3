"""The sans-I/O session core, driven with plain calls: no sockets, no event loop, no clock."""

import json

import msgpack
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickmesh.contracts.codes import CloseCode, ErrorCode
from tickmesh.edge.frames import MSGPACK
from tickmesh.edge.identity import AuthFailure, Identity
from tickmesh.edge.limits import TokenBucket
from tickmesh.edge.session import Authenticate, Close, RunCommand, Session, SessionLimits, Subscribe, Unsubscribe

ALICE = Identity("alice", frozenset({"user"}), frozenset({"equities", "crypto"}), expires_at=10_000.0, issued_at=0.0)
SUPPORT = Identity("sam", frozenset({"support"}), frozenset(), expires_at=10_000.0)
ADMIN = Identity("ada", frozenset({"admin"}), frozenset(), expires_at=10_000.0)
LIMITS = SessionLimits(auth_timeout=5, heartbeat_interval=10, max_subscriptions=3, max_frame_bytes=500)


def make(identity=ALICE, **kw):
    kw.setdefault("channel_exists", lambda ch: ch.arg != "NOPE")
    kw.setdefault("limits", LIMITS)
    return Session(conn_id="c1", now=0.0, identity=identity, **kw)


def frames(out):
    return [orjson.loads(o) for o in out if isinstance(o, bytes)]


def send(session, frame, now=1.0):
    session.receive_frame(frame if isinstance(frame, (str, bytes)) else orjson.dumps(frame), now)
    return session.take()


# -- authentication ------------------------------------------------------------------------


def test_nothing_but_auth_and_ping_before_authentication():
    s = make(identity=None)
    assert frames(send(s, {"op": "sub", "id": 1, "ch": "prices:AAPL"}))[0]["code"] == ErrorCode.UNAUTHORIZED
    assert frames(send(s, {"op": "cmd", "id": 2, "name": "alert.list"}))[0]["code"] == ErrorCode.UNAUTHORIZED
    assert frames(send(s, {"op": "ping", "id": 3})) == [{"op": "pong", "id": 3}]
    [action] = send(s, {"op": "auth", "id": 4, "token": "t"})
    assert action == Authenticate("t", 4, refresh=False)


def test_welcome_after_auth_gives_identity_heartbeat_and_limits():
    s = make(identity=None)
    send(s, {"op": "auth", "id": 1, "token": "t"})
    s.auth_result(ALICE, 2.0, rid=1, refresh=False)
    [welcome] = frames(s.take())
    assert welcome["op"] == "welcome" and welcome["id"] == 1 and welcome["user"] == "alice"
    assert welcome["heartbeat_ms"] == 10_000 and welcome["expires_at"] == 10_000
    assert welcome["limits"]["max_subscriptions"] == 3


def test_a_failed_auth_closes_with_the_failures_code():
    s = make(identity=None)
    send(s, {"op": "auth", "id": 1, "token": "t"})
    s.auth_result(AuthFailure(int(CloseCode.AUTH_FAILED), "bad"), 2.0, rid=1, refresh=False)
    assert s.take()[-1] == Close(int(CloseCode.AUTH_FAILED), "bad")
    assert send(s, {"op": "ping", "id": 1}) == []


def test_auth_deadline():
    s = make(identity=None)
    s.tick(4.9)
    assert s.take() == []
    s.tick(5.1)
    assert s.take()[-1].code == CloseCode.AUTH_TIMEOUT


def test_auth_twice_is_refused_and_refresh_keeps_the_connection():
    s = make()
    s.take()
    assert frames(send(s, {"op": "auth", "id": 1, "token": "t"}))[0]["code"] == ErrorCode.INVALID_FIELD
    [action] = send(s, {"op": "refresh", "id": 2, "token": "t2"})
    assert action == Authenticate("t2", 2, refresh=True)
    later = Identity("alice", ALICE.roles, ALICE.entitlements, expires_at=20_000.0)
    s.auth_result(later, 3.0, rid=2, refresh=True)
    assert frames(s.take()) == [{"op": "ok", "id": 2, "expires_at": 20_000}]
    send(s, {"op": "pong"}, now=14_999.0)
    s.tick(15_000.0)
    assert all(not isinstance(o, Close) for o in s.take())


def test_refresh_must_name_the_same_user():
    s = make()
    s.take()
    send(s, {"op": "refresh", "id": 2, "token": "t2"})
    s.auth_result(SUPPORT, 3.0, rid=2, refresh=True)
    assert frames(s.take())[0]["code"] == ErrorCode.FORBIDDEN
    assert s.identity.user == "alice"


def test_an_unrefreshed_token_expires_with_the_get_a_new_token_code():
    s = make()
    s.take()
    s.tick(10_000.0 + LIMITS.expiry_leeway + 1)
    assert s.take()[-1].code == CloseCode.TOKEN_EXPIRED


# -- heartbeats ----------------------------------------------------------------------------


def test_server_heartbeats_and_dead_peer_detection_within_two_intervals():
    s = make()
    s.take()
    s.tick(10.5)
    assert frames(s.take()) == [{"op": "ping"}]
    send(s, {"op": "pong"}, now=11.0)
    s.tick(30.9)
    assert not any(isinstance(o, Close) for o in s.take())
    s.tick(31.1)
    assert s.take()[-1].code == CloseCode.HEARTBEAT_TIMEOUT


# -- channels and permissions -----------------------------------------------------------------


def test_sub_yields_a_subscribe_action_for_the_io_layer_to_answer():
    s = make()
    s.take()
    [out] = send(s, {"op": "sub", "id": 1, "ch": "prices:BRK.B", "max_hz": 2})
    assert out == Subscribe(1, "prices:BRK.B", "tm.tick.BRK_2EB", True, None, 2.0, None)


def test_prices_need_an_entitlement_to_the_market():
    s = make()
    s.take()
    [err] = frames(send(s, {"op": "sub", "id": 1, "ch": "prices:EUR/USD"}))
    assert err["code"] == ErrorCode.NOT_ENTITLED and "fx" in err["reason"]


def test_user_channels_are_always_the_callers_own():
    s = make()
    s.take()
    [own] = send(s, {"op": "sub", "id": 1, "ch": "trades"})
    assert own.subject == "tm.user.alice.trades" and not own.state and own.audited_owner is None
    assert frames(send(s, {"op": "sub", "id": 2, "ch": "portfolio:bob"}))[0]["code"] == ErrorCode.FORBIDDEN
    [named_self] = send(s, {"op": "sub", "id": 3, "ch": "portfolio:alice"})
    assert named_self.subject == "tm.user.alice.portfolio"


def test_support_may_read_another_users_channel_and_it_is_audited():
    s = make(SUPPORT)
    s.take()
    [out] = send(s, {"op": "sub", "id": 1, "ch": "portfolio:bob"})
    assert out.subject == "tm.user.bob.portfolio" and out.audited_owner == "bob"


def test_public_channels_and_event_positions():
    s = make()
    s.take()
    [out] = send(s, {"op": "sub", "id": 1, "ch": "notifications", "since": {"epoch": "e1", "seq": 41}})
    assert out.since == ("e1", 41)
    [ann] = send(s, {"op": "sub", "id": 2, "ch": "announcements"})
    assert ann.subject == "tm.announcements"


@pytest.mark.parametrize(
    "frame",
    [
        {"op": "sub", "id": 1, "ch": "trades", "max_hz": 5},
        {"op": "sub", "id": 1, "ch": "prices:AAPL", "max_hz": 0},
        {"op": "sub", "id": 1, "ch": "prices:AAPL", "max_hz": "5"},
        {"op": "sub", "id": 1, "ch": "prices:AAPL", "since": {"epoch": "e", "seq": 1}},
        {"op": "sub", "id": 1, "ch": "trades", "since": {"epoch": "e", "seq": -1}},
        {"op": "sub", "id": 1, "ch": "trades", "since": 5},
    ],
)
def test_bad_subscription_options(frame):
    s = make()
    s.take()
    assert frames(send(s, frame))[0]["code"] == ErrorCode.INVALID_FIELD
    assert s.subscriptions == {}


def test_unsub_and_close_release_subscriptions():
    s = make()
    s.take()
    send(s, {"op": "sub", "id": 1, "ch": "prices:AAPL"})
    send(s, {"op": "sub", "id": 2, "ch": "trades"})
    [out] = send(s, {"op": "unsub", "id": 3, "ch": "prices:AAPL"})
    assert out == Unsubscribe("prices:AAPL", "tm.tick.AAPL", True, 3, answer=True)
    s.close(4000, "bye")
    out = s.take()
    assert out[0] == Unsubscribe("trades", "tm.user.alice.trades", False) and out[-1] == Close(4000, "bye")


# -- commands ------------------------------------------------------------------------------

ORDER = {"client_order_id": "o1", "symbol": "AAPL", "side": "buy", "type": "market", "quantity": "10"}


def test_a_command_carries_the_verified_user_never_the_payloads():
    s = make()
    s.take()
    [action] = send(s, {"op": "cmd", "id": 9, "name": "order.submit", "key": "k1", "data": dict(ORDER)})
    assert isinstance(action, RunCommand) and action.subject == "tm.cmd.order.submit" and action.key == "k1"
    body = orjson.loads(action.payload)
    assert body["user"] == "alice" and body["cmd_id"] == "k:k1" and body["data"]["quantity"] == "10"


@pytest.mark.parametrize(
    "frame,code",
    [
        ({"op": "cmd", "id": 1, "name": "rm -rf", "data": {}}, ErrorCode.UNKNOWN_COMMAND),
        (
            {"op": "cmd", "id": 1, "name": "announcement.publish", "data": {"severity": "info", "text": "x"}},
            ErrorCode.FORBIDDEN,
        ),
        ({"op": "cmd", "id": 1, "name": "order.submit", "data": dict(ORDER, quantity=10)}, ErrorCode.INVALID_FIELD),
        ({"op": "cmd", "id": 1, "name": "order.submit", "data": dict(ORDER, user="bob")}, ErrorCode.INVALID_FIELD),
        ({"op": "cmd", "id": 1, "name": "order.submit", "key": "x" * 65, "data": ORDER}, ErrorCode.INVALID_FIELD),
    ],
)
def test_bad_commands(frame, code):
    s = make()
    s.take()
    assert frames(send(s, frame))[0]["code"] == code


def test_admins_may_publish_announcements():
    s = make(ADMIN)
    s.take()
    [action] = send(
        s, {"op": "cmd", "id": 1, "name": "announcement.publish", "data": {"severity": "info", "text": "x"}}
    )
    assert isinstance(action, RunCommand)


def test_commands_are_rate_limited_per_bucket():
    s = make(rate_limiter=TokenBucket(rate=1.0, burst=2.0, now=0.0))
    s.take()
    outs = [send(s, {"op": "cmd", "id": i, "name": "alert.list"}, now=1.0) for i in range(3)]
    assert isinstance(outs[0][0], RunCommand) and isinstance(outs[1][0], RunCommand)
    err = frames(outs[2])[0]
    assert err["code"] == ErrorCode.RATE_LIMITED and "ms" in err["reason"]
    assert isinstance(send(s, {"op": "cmd", "id": 4, "name": "alert.list"}, now=2.1)[0], RunCommand)


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw,code",
    [
        (b"{nope", ErrorCode.MALFORMED_FRAME),
        (b"[1,2]", ErrorCode.MALFORMED_FRAME),
        (b"", ErrorCode.MALFORMED_FRAME),
        (b'{"id":1}', ErrorCode.UNKNOWN_OP),
        (b'{"op":"launch","id":1}', ErrorCode.UNKNOWN_OP),
        (b'{"op":5,"id":1}', ErrorCode.UNKNOWN_OP),
        (b'{"op":"sub","id":1}', ErrorCode.INVALID_FIELD),
        (b'{"op":"sub","id":{"x":1},"ch":"prices:AAPL"}', ErrorCode.INVALID_FIELD),
        (b'{"op":"sub","id":1,"ch":"prices:*"}', ErrorCode.BAD_CHANNEL),
        (b'{"op":"sub","id":1,"ch":"prices:NOPE"}', ErrorCode.UNKNOWN_CHANNEL),
        (b'{"op":"unsub","id":1,"ch":"prices:AAPL"}', ErrorCode.NOT_SUBSCRIBED),
        (b'{"op":"ping","pad":"' + b"x" * 600 + b'"}', ErrorCode.FRAME_TOO_LARGE),
    ],
)
def test_bad_input_gets_a_documented_error_and_the_session_stays_usable(raw, code):
    s = make()
    s.take()
    out = frames(send(s, raw))
    assert len(out) == 1 and out[0]["op"] == "err" and out[0]["code"] == code
    assert s.closed is None
    assert frames(send(s, {"op": "ping", "id": 1})) == [{"op": "pong", "id": 1}]


def test_double_subscribe_and_subscription_limit():
    s = make()
    s.take()
    send(s, {"op": "sub", "id": 1, "ch": "prices:AAPL"})
    assert frames(send(s, {"op": "sub", "id": 2, "ch": "prices:AAPL"}))[0]["code"] == ErrorCode.ALREADY_SUBSCRIBED
    send(s, {"op": "sub", "id": 3, "ch": "prices:MSFT"})
    send(s, {"op": "sub", "id": 4, "ch": "trades"})
    assert frames(send(s, {"op": "sub", "id": 5, "ch": "prices:NVDA"}))[0]["code"] == ErrorCode.TOO_MANY_SUBSCRIPTIONS


def test_the_msgpack_codec_speaks_the_same_frames():
    s = make(codec=MSGPACK)
    welcome = msgpack.unpackb(s.take()[0])
    assert welcome["op"] == "welcome" and welcome["proto"] == "tickmesh.v1.msgpack"
    s.receive_frame(msgpack.packb({"op": "ping", "id": 5}), 1.0)
    assert msgpack.unpackb(s.take()[0]) == {"op": "pong", "id": 5}
    s.receive_frame(b"\xc1garbage", 1.0)
    assert msgpack.unpackb(s.take()[0])["code"] == ErrorCode.MALFORMED_FRAME
    s.receive_frame('{"op":"ping"}', 1.0)
    assert msgpack.unpackb(s.take()[0])["code"] == ErrorCode.MALFORMED_FRAME


# -- properties ----------------------------------------------------------------------------

frame_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
client_frames = st.fixed_dictionaries(
    {},
    optional={
        "op": st.sampled_from(["sub", "unsub", "ping", "pong", "auth", "refresh", "cmd"]) | st.text(max_size=6),
        "id": frame_values,
        "ch": st.sampled_from(
            [
                "prices:AAPL",
                "prices:EUR/USD",
                "prices:*",
                "portfolio",
                "portfolio:bob",
                "trades:alice",
                "notifications:*",
                "news",
                "announcements",
            ]
        )
        | st.text(max_size=40)
        | frame_values,
        "name": st.sampled_from(["order.submit", "announcement.publish", "alert.list"]) | frame_values,
        "data": frame_values,
        "since": frame_values,
        "max_hz": frame_values,
        "token": frame_values,
        "key": frame_values,
    },
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(client_frames.map(lambda f: json.dumps(f).encode()) | st.binary(max_size=60), max_size=12),
    st.sampled_from([None, ALICE]),
)
def test_arbitrary_frames_never_raise_and_never_grant_what_they_should_not(raws, identity):
    s = make(identity=identity)
    s.take()
    for raw in raws:
        s.receive_frame(raw, 1.0)
        for out in s.take():
            if isinstance(out, bytes):
                assert orjson.loads(out)["op"] in ("err", "pong", "ok")
                continue
            assert s.identity is not None or isinstance(out, Authenticate)
            if isinstance(out, Subscribe):
                assert all(c.isalnum() or c in "._-" for c in out.subject)
                # alice: never another user's data, never fx prices.
                assert not out.subject.startswith("tm.user.") or out.subject.startswith("tm.user.alice.")
                assert "EUR" not in out.subject
            if isinstance(out, RunCommand):
                assert orjson.loads(out.payload)["user"] == "alice"
                assert out.name != "announcement.publish"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_arbitrary_token_strings_are_handed_to_verification_never_trusted(token):
    s = make(identity=None)
    s.receive_frame(orjson.dumps({"op": "auth", "id": 1, "token": token}), 1.0)
    out = s.take()
    assert out == [Authenticate(token, 1, refresh=False)]
    assert s.identity is None
    assert frames(send(s, {"op": "sub", "id": 2, "ch": "portfolio"}))[0]["code"] == ErrorCode.UNAUTHORIZED


@pytest.mark.parametrize(
    "extra", [{"history": 0}, {"history": 1001}, {"history": "5"}, {"history": 5, "since": {"epoch": "e", "seq": 1}}]
)
def test_history_is_bounded_and_exclusive_with_since(extra):
    s = make()
    s.take()
    assert frames(send(s, {"op": "sub", "id": 1, "ch": "trades", **extra}))[0]["code"] == ErrorCode.INVALID_FIELD
    [ok] = send(s, {"op": "sub", "id": 2, "ch": "trades", "history": 50})
    assert ok.history == 50
