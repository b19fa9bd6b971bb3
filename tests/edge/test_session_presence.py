"""Presence and watch-list frames in the sans-I/O session core: no sockets, no event loop."""

import orjson

from tickmesh.contracts.codes import ErrorCode
from tickmesh.edge.identity import Identity
from tickmesh.edge.session import Join, Leave, Session, SessionLimits, Subscribe, Unsubscribe

ALICE = Identity("alice", frozenset({"user"}), frozenset({"equities"}), expires_at=10_000.0)
SAM = Identity("sam", frozenset({"support"}), frozenset(), expires_at=10_000.0, name="Sam Support")
WL = "AbCdEfGhIjKlMnOpQrStU1"


def make(identity=ALICE):
    return Session(conn_id="c1", now=0.0, identity=identity, limits=SessionLimits(max_topics=2))


def send(session, frame):
    session.receive_frame(orjson.dumps(frame), 1.0)
    return session.take()


def errors(out):
    return [orjson.loads(o)["code"] for o in out if isinstance(o, bytes) and orjson.loads(o)["op"] == "err"]


def test_join_becomes_an_action_answered_by_the_io_layer_and_again_is_an_update():
    s = make()
    s.take()
    [join] = send(s, {"op": "join", "id": 1, "topic": "symbol.AAPL", "data": {"viewing": "chart"}})
    assert join == Join(1, "symbol.AAPL", {"viewing": "chart"}, False, None)
    s.join_done(1, "symbol.AAPL", False)
    assert orjson.loads(s.take()[0]) == {"op": "ok", "id": 1}
    [again] = send(s, {"op": "join", "id": 2, "topic": "symbol.AAPL", "data": {"viewing": "ticket"}})
    assert again.again is True
    s.join_done(2, "symbol.AAPL", True)
    assert orjson.loads(s.take()[0]) == {"op": "ok", "id": 2, "updated": True}
    assert send(s, {"op": "leave", "id": 3, "topic": "symbol.AAPL"}) == [Leave(3, "symbol.AAPL")]
    assert errors(send(s, {"op": "leave", "id": 4, "topic": "symbol.AAPL"})) == [ErrorCode.NOT_JOINED]


def test_join_checks_topic_permissions_data_and_the_topic_limit():
    s = make()
    s.take()
    assert errors(send(s, {"op": "join", "id": 1, "topic": "symbol.BTC-USD"})) == [ErrorCode.NOT_ENTITLED]
    assert errors(send(s, {"op": "join", "id": 2, "topic": "symbol.NOPE"})) == [ErrorCode.UNKNOWN_CHANNEL]
    assert errors(send(s, {"op": "join", "id": 3, "topic": "desk.support"})) == [ErrorCode.FORBIDDEN]
    assert errors(send(s, {"op": "join", "id": 4, "topic": "desk.sales"})) == [ErrorCode.BAD_CHANNEL]
    assert errors(send(s, {"op": "join", "id": 5})) == [ErrorCode.INVALID_FIELD]
    assert errors(send(s, {"op": "join", "id": 6, "topic": "symbol.AAPL", "data": "x" * 300})) == [
        ErrorCode.INVALID_FIELD
    ]
    [wl] = send(s, {"op": "join", "id": 7, "topic": f"watchlist.{WL}"})
    assert wl.watchlist == WL  # membership is the I/O layer's check
    send(s, {"op": "join", "id": 8, "topic": "symbol.AAPL"})
    assert errors(send(s, {"op": "join", "id": 9, "topic": "symbol.MSFT"})) == [ErrorCode.TOO_MANY_TOPICS]
    s.join_failed(7, f"watchlist.{WL}", 301, "no", again=False)  # refused: the slot is free again
    assert errors(s.take()) == [ErrorCode.FORBIDDEN]
    assert isinstance(send(s, {"op": "join", "id": 10, "topic": "symbol.MSFT"})[0], Join)


def test_support_staff_may_join_the_desk_and_anyone_may_watch_it():
    s = make(SAM)
    s.take()
    assert isinstance(send(s, {"op": "join", "id": 1, "topic": "desk.support"})[0], Join)
    u = make()
    u.take()
    [sub] = send(u, {"op": "sub", "id": 1, "ch": "presence:desk.support"})
    assert isinstance(sub, Subscribe) and not sub.state and sub.subject == "tm.presence.desk_2Esupport"


def test_presence_and_watchlist_subscriptions():
    s = make()
    s.take()
    assert errors(send(s, {"op": "sub", "id": 1, "ch": "presence:symbol.AAPL", "history": 5})) == [
        ErrorCode.INVALID_FIELD
    ]
    assert errors(send(s, {"op": "sub", "id": 2, "ch": "presence:symbol.AAPL", "max_hz": 1})) == [
        ErrorCode.INVALID_FIELD
    ]
    [wl] = send(s, {"op": "sub", "id": 3, "ch": f"watchlist:{WL}"})
    assert (wl.state, wl.watchlist, wl.subject) == (True, WL, f"tm.wl.{WL}")
    s.end_subscription(f"watchlist:{WL}", 301, "access revoked")
    out = s.take()
    assert out[0] == Unsubscribe(f"watchlist:{WL}", f"tm.wl.{WL}", True)
    assert orjson.loads(out[1]) == {"op": "unsub", "ch": f"watchlist:{WL}", "code": 301, "reason": "access revoked"}
    s.end_subscription(f"watchlist:{WL}", 301, "again")  # already ended: nothing
    assert s.take() == []


def test_a_membership_the_server_ends_is_told_once():
    s = make()
    s.take()
    send(s, {"op": "join", "id": 1, "topic": f"watchlist.{WL}"})
    s.end_membership(f"watchlist.{WL}", 301, "access revoked")
    assert [orjson.loads(o) for o in s.take()] == [
        {"op": "leave", "topic": f"watchlist.{WL}", "code": 301, "reason": "access revoked"}
    ]
    assert errors(send(s, {"op": "leave", "id": 2, "topic": f"watchlist.{WL}"})) == [ErrorCode.NOT_JOINED]


def test_turning_the_presence_flag_off_ends_memberships_too():
    enabled = {"presence": True}
    s = Session(
        conn_id="c1",
        now=0.0,
        identity=ALICE,
        limits=SessionLimits(max_topics=2),
        feature_enabled=lambda feature, identity: enabled.get(feature, True),
    )
    s.take()
    send(s, {"op": "join", "id": 1, "topic": "symbol.AAPL"})
    enabled["presence"] = False
    s.features_changed()
    out = s.take()
    assert out[0] == Leave(None, "symbol.AAPL", answer=False)
    assert orjson.loads(out[1])["op"] == "leave" and orjson.loads(out[1])["code"] == 301
    assert s.joined == set()
