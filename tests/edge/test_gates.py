"""Realtime features behind flags, in the sans-I/O session core (no sockets, no NATS).

Presence and watch-list channels are refused by the permissions of main until their edge part
lands; here the permission check is replaced by a grant so the gate itself is what is tested.
"""

import orjson
import pytest

from tickmesh.contracts.channels import Kind
from tickmesh.edge import session as session_module
from tickmesh.edge.gates import feature_of_channel, feature_of_command, feature_of_op
from tickmesh.edge.identity import Identity
from tickmesh.edge.permissions import Grant
from tickmesh.edge.session import RunCommand, Session, Subscribe, Unsubscribe

ALICE = Identity("alice", frozenset({"user"}), frozenset({"equities"}), expires_at=10_000.0)


@pytest.fixture
def gated(monkeypatch):
    monkeypatch.setattr(session_module, "check_channel", lambda identity, ch: Grant(identity.user))
    enabled = {"presence": True, "watchlist": True}
    s = Session(conn_id="c1", now=0.0, identity=ALICE, feature_enabled=lambda feature, identity: enabled[feature])
    s.take()
    return s, enabled


def send(s, frame):
    s.receive_frame(orjson.dumps(frame), 1.0)
    return s.take()


def frames(out):
    return [orjson.loads(o) for o in out if isinstance(o, bytes)]


def test_the_table_names_what_each_flag_gates():
    assert feature_of_channel(Kind.PRESENCE) == "presence" and feature_of_channel(Kind.WATCHLIST) == "watchlist"
    assert feature_of_channel(Kind.PRICES) is None and feature_of_op("join") == "presence"
    assert feature_of_op("sub") is None and feature_of_command("watchlist.edit") == "watchlist"
    assert feature_of_command("order.submit") is None


def test_a_gated_feature_is_refused_while_its_flag_is_off(gated):
    s, enabled = gated
    enabled["presence"] = False
    [err] = frames(send(s, {"op": "sub", "id": 1, "ch": "presence:symbol.AAPL"}))
    assert err["code"] == 301 and "realtime.presence" in err["reason"]
    out = send(s, {"op": "sub", "id": 2, "ch": "prices:AAPL"})
    assert isinstance(out[0], Subscribe)  # ungated channels are untouched
    out = send(s, {"op": "cmd", "id": 3, "name": "watchlist.list", "data": {}})
    assert isinstance(out[0], RunCommand)  # the watch-list flag is still on
    enabled["watchlist"] = False
    [err] = frames(send(s, {"op": "cmd", "id": 4, "name": "watchlist.list", "data": {}}))
    assert err["code"] == 301 and "realtime.watchlists" in err["reason"]


def test_turning_the_flag_off_ends_only_the_gated_subscriptions_without_a_reconnect(gated):
    s, enabled = gated
    assert isinstance(send(s, {"op": "sub", "id": 1, "ch": "presence:symbol.AAPL"})[0], Subscribe)
    assert isinstance(send(s, {"op": "sub", "id": 2, "ch": "prices:AAPL"})[0], Subscribe)
    s.features_changed()
    assert s.take() == []  # nothing changed for this user: nothing happens
    enabled["presence"] = False
    s.features_changed()
    out = s.take()
    assert isinstance(out[0], Unsubscribe) and out[0].name == "presence:symbol.AAPL" and not out[0].answer
    assert frames(out) == [
        {
            "op": "unsub",
            "ch": "presence:symbol.AAPL",
            "code": 301,
            "reason": "presence is not enabled for you (feature flag realtime.presence)",
        }
    ]
    assert list(s.subscriptions) == ["prices:AAPL"] and s.closed is None
