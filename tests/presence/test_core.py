"""The sans-I/O presence core: local memberships, rosters, the directory. No sockets, no clock."""

from __future__ import annotations

import orjson
import pytest

from tickmesh.contracts.messages import schema
from tickmesh.presence.directory import Directory
from tickmesh.presence.local import LocalPresence
from tickmesh.presence.records import Record, decode_record, member_key, parse_member_key

T = "symbol.AAPL"
S = 1_795_630_000_000_000  # a time in µs; the record times below are offsets from it


def rec(conns=1, since=100, at=100, data=None, name=None):
    return Record(name or "n", conns, data, S + since, S + at)


def feed(directory: Directory, edge: str, local: LocalPresence) -> None:
    """What the store adapter does: local writes go to the bucket, the watch feeds the directory."""
    for key, value in local.take().items():
        k = parse_member_key(key)
        directory.record(k.topic, k.edge, k.user, None if value is None else decode_record(value))


def payload(delta_or_snapshot: bytes) -> dict:
    body = orjson.loads(delta_or_snapshot)
    schema("presence").validate(body)  # every frame follows the contract
    return body


@pytest.fixture
def d():
    directory = Directory(limit=3, flush_interval=0.25)
    directory.lease("e1", True)
    directory.lease("e2", True)
    directory.open(T)
    return directory


def flush(d: Directory, now: float) -> list[dict]:
    return [payload(x.payload) for x in d.flush(now)]


def test_snapshot_then_join_and_leave_deltas_with_consecutive_versions(d):
    assert payload(d.rosters[T].snapshot()[1]) == {
        "type": "snapshot",
        "count": 0,
        "conns": 0,
        "limit": 3,
        "members": [],
    }
    d.record(T, "e1", "alice", rec(name="Alice", data={"viewing": "chart"}))
    [delta] = flush(d, 10.0)
    assert delta["joins"] == [
        {"user": "alice", "name": "Alice", "conns": 1, "since": S + 100, "data": {"viewing": "chart"}}
    ]
    assert d.rosters[T].version == 1
    d.record(T, "e1", "alice", None)
    [delta] = flush(d, 11.0)
    assert delta["leaves"] == ["alice"] and delta["count"] == 0
    assert d.rosters[T].version == 2


def test_one_user_on_two_edges_is_one_member_with_summed_connections(d):
    d.record(T, "e1", "bob", rec(conns=2, since=50, at=60, data={"tab": 1}))
    d.record(T, "e2", "bob", rec(conns=1, since=70, at=80, data={"tab": 2}))
    [delta] = flush(d, 1.0)
    assert delta["joins"] == [{"user": "bob", "name": "n", "conns": 3, "since": S + 50, "data": {"tab": 2}}]
    assert (delta["count"], delta["conns"]) == (1, 3)


def test_changes_within_the_interval_are_coalesced_and_cancelling_ones_send_nothing(d):
    d.record(T, "e1", "alice", rec())
    assert len(flush(d, 1.0)) == 1
    d.record(T, "e1", "bob", rec())
    assert flush(d, 1.1) == []  # within 250 ms of the last delta: held
    assert d.next_due() == pytest.approx(1.25)
    d.record(T, "e1", "bob", None)
    d.record(T, "e1", "carol", rec(since=200))
    d.record(T, "e1", "alice", rec(data={"x": 1}))
    [delta] = flush(d, 1.3)
    assert [m["user"] for m in delta["joins"]] == ["carol"]
    assert [m["user"] for m in delta["updates"]] == ["alice"]
    assert "leaves" not in delta  # bob joined and left between two deltas: nobody saw him
    d.record(T, "e1", "dave", rec())
    d.record(T, "e1", "dave", None)
    assert flush(d, 5.0) == []
    assert d.rosters[T].version == 2


def test_large_topics_list_the_first_members_and_count_the_rest(d):
    for i, user in enumerate(["u0", "u1", "u2", "u3", "u4"]):
        d.record(T, "e1", user, rec(since=100 + i))
    [delta] = flush(d, 1.0)
    assert [m["user"] for m in delta["joins"]] == ["u0", "u1", "u2"]
    assert (delta["count"], delta["conns"]) == (5, 5)
    d.record(T, "e1", "u9", rec(since=999))
    [delta] = flush(d, 2.0)
    assert delta == {"type": "delta", "count": 6, "conns": 6, "limit": 3}  # only the count moved
    d.record(T, "e1", "u1", None)
    [delta] = flush(d, 3.0)
    assert delta["leaves"] == ["u1"] and [m["user"] for m in delta["joins"]] == ["u3"]
    snap = payload(d.rosters[T].snapshot()[1])
    assert [m["user"] for m in snap["members"]] == ["u0", "u2", "u3"] and snap["count"] == 5


def test_snapshot_is_the_state_as_of_the_last_delta_so_later_deltas_apply_exactly(d):
    d.record(T, "e1", "alice", rec())
    flush(d, 1.0)
    d.record(T, "e1", "bob", rec(since=101))  # not flushed yet
    version, snap = d.rosters[T].snapshot()
    assert version == 1 and [m["user"] for m in payload(snap)["members"]] == ["alice"]
    [delta] = flush(d, 2.0)
    assert [m["user"] for m in delta["joins"]] == ["bob"]


def test_a_dead_edge_takes_its_members_and_only_those_along(d):
    d.record(T, "e1", "alice", rec())
    d.record(T, "e2", "bob", rec())
    d.record(T, "e2", "alice", rec(since=300, at=300))
    flush(d, 1.0)
    d.lease("e2", False)
    [delta] = flush(d, 2.0)
    assert delta["leaves"] == ["bob"]
    assert delta["updates"] == [{"user": "alice", "name": "n", "conns": 1, "since": S + 100}]
    d.lease("e2", True)  # back (a NATS hiccup longer than the lease): its records count again
    [delta] = flush(d, 3.0)
    assert [m["user"] for m in delta["joins"]] == ["bob"]


def test_records_of_an_edge_not_yet_known_alive_wait_for_its_lease(d):
    d.record(T, "e3", "carol", rec())
    assert flush(d, 1.0) == []
    d.lease("e3", True)
    [delta] = flush(d, 2.0)
    assert [m["user"] for m in delta["joins"]] == ["carol"]


# -- this edge's own memberships -------------------------------------------------------------


def test_tabs_of_one_user_write_one_record_counting_connections():
    local = LocalPresence("e1", grace=5.0)
    assert local.join("c1", "alice", "Alice", T, {"v": 1}, S + 1000) is False
    local.join("c2", "alice", "Alice", T, {"v": 2}, S + 2000)
    writes = local.take()
    assert list(writes) == [member_key("e1", T, "alice")]  # one key, latest value
    r = decode_record(writes[member_key("e1", T, "alice")])
    assert (r.conns, r.since, r.data) == (2, S + 1000, {"v": 2})
    assert local.join("c1", "alice", "Alice", T, {"v": 3}, 3000) is True  # again: an update
    local.take()
    local.leave("c2", T)
    assert decode_record(local.take()[member_key("e1", T, "alice")]).conns == 1
    local.leave("c1", T)
    assert local.take() == {member_key("e1", T, "alice"): None}
    assert local.leave("c1", T) is False


def test_a_reconnect_within_the_grace_period_writes_nothing_visible():
    d = Directory(limit=10, flush_interval=0.0)
    d.lease("e1", True)
    d.open(T)
    local = LocalPresence("e1", grace=5.0)
    local.join("c1", "bob", "Bob", T, None, S + 1000)
    feed(d, "e1", local)
    assert len(d.flush(0.0)) == 1
    local.closed("c1", now=10.0)
    local.tick(14.9)
    assert local.take() == {}  # still a member during the grace period
    local.join("c9", "bob", "Bob", T, None, S + 5000)  # the reloaded page
    feed(d, "e1", local)
    assert d.flush(15.0) == []  # no leave, no join, not even an update
    local.closed("c9", now=20.0)
    local.tick(24.0)
    assert local.take() == {}
    local.tick(25.0)
    feed(d, "e1", local)
    [delta] = d.flush(25.0)
    assert payload(delta.payload)["leaves"] == ["bob"]


def test_revoking_ends_a_membership_at_once_and_names_its_connections():
    local = LocalPresence("e1", grace=5.0)
    local.join("c1", "bob", "Bob", "watchlist.AbCdEfGhIjKlMnOpQrStUv", None, 1)
    local.join("c2", "bob", "Bob", "watchlist.AbCdEfGhIjKlMnOpQrStUv", None, 2)
    local.take()
    assert local.revoke("watchlist.AbCdEfGhIjKlMnOpQrStUv", "bob") == ["c1", "c2"]
    assert list(local.take().values()) == [None]
    assert local.topics_of("c1") == [] and len(local) == 0


def test_records_lists_everything_for_a_rewrite_after_reconnect():
    local = LocalPresence("e1", grace=5.0)
    local.join("c1", "alice", "Alice", T, None, 1)
    local.join("c1", "alice", "Alice", "desk.support", None, 2)
    local.closed("c1", now=0.0)  # in grace: still written again
    assert sorted(local.records()) == sorted([member_key("e1", T, "alice"), member_key("e1", "desk.support", "alice")])


def test_a_bad_record_is_refused_not_trusted():
    for value in [b"x", b"[]", b'{"name":"a","conns":0,"since":1,"at":1}', b'{"name":1,"conns":1,"since":1,"at":1}']:
        with pytest.raises(ValueError):
            decode_record(value)
    for key in ["m.e1.symbol_2EAAPL", "x.e1.a.b", "m.E1!.symbol_2EAAPL.bob", "m.e1.nope.bob"]:
        with pytest.raises(ValueError):
            parse_member_key(key)


def test_ten_thousand_members_cost_a_bounded_delta():
    d = Directory(limit=100, flush_interval=0.25)
    d.lease("e1", True)
    d.open(T)
    for i in range(10_000):
        d.record(T, "e1", f"user{i:05d}", rec(since=i))
    [first] = d.flush(0.0)
    body = payload(first.payload)
    assert body["count"] == 10_000 and len(body["joins"]) == 100
    for i in range(100, 400):  # churn beyond the listed members: counts only
        d.record(T, "e1", f"user{i:05d}", None)
    [delta] = d.flush(1.0)
    assert payload(delta.payload) == {"type": "delta", "count": 9_700, "conns": 9_700, "limit": 100}
