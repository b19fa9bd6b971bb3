"""The stream table (contracts/streams.toml): what is stored where, checked without NATS."""

from __future__ import annotations

import pytest

from tickmesh.contracts import streams as table
from tickmesh.contracts.channels import Channel, Kind, subject_for, wildcard


def test_every_persisted_channel_finds_its_stream_and_class():
    for kind, arg in [
        (Kind.PRICES, "BRK.B"),
        (Kind.PORTFOLIO, "al.ice"),
        (Kind.TRADES, "bob"),
        (Kind.NOTIFICATIONS, "bob"),
        (Kind.ALERTS, "bob"),
        (Kind.ANNOUNCEMENTS, None),
        (Kind.NEWS, None),
    ]:
        st = table.stream_for_subject(subject_for(Channel(kind, arg)))
        assert kind in st.channels
        assert st.cls == ("state" if kind.conflates else "event"), kind


def test_stream_names_the_code_relies_on():
    assert table.stream("ticks").name == "TM_TICKS"
    assert table.stream("user_events").subjects == ("tm.user.*.trades", "tm.user.*.notifications", "tm.user.*.alerts")
    assert table.bucket("holdings").name == "tm_holdings"


def test_event_feeds_are_exactly_the_event_channel_patterns():
    patterns = [p for p, _ in table.event_feeds()]
    assert patterns == [wildcard(k) for k in Kind if k.channel_class == "event"]


def test_every_wildcard_matches_what_subject_for_builds():
    for kind, arg in [(Kind.PRICES, "BRK.B"), (Kind.TRADES, "a.b@c"), (Kind.PORTFOLIO, "x"), (Kind.NEWS, None)]:
        assert table.matches(wildcard(kind), subject_for(Channel(kind, arg)))
    assert not table.matches(wildcard(Kind.TRADES), subject_for(Channel(Kind.ALERTS, "a")))


def test_subject_matching_follows_nats_wildcards():
    assert table.matches("tm.user.*.trades", "tm.user.bob.trades")
    assert not table.matches("tm.user.*.trades", "tm.user.bob.trades.x")
    assert not table.matches("tm.user.*.trades", "tm.user.trades")
    assert table.matches("tm.>", "tm.a.b")
    assert not table.matches("tm.>", "tm")
    with pytest.raises(KeyError):
        table.stream_for_subject("tm.cmd.order.submit")


def test_limits_resolve_retention_keys():
    st = table.stream("ticks")
    values = {k: r.default for k, r in table.retention_settings().items()}
    assert st.limit_values(values) == {"max_age": 21600.0, "max_msgs_per_subject": 1000}
    assert table.bucket("tickets").ttl_value(values) == 300.0
    assert table.bucket("holdings").ttl_value(values) == 0.0


RETENTION = {"keep": {"env": "X_KEEP", "type": "float", "default": 5, "doc": ""}}


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"streams": {"a": {"name": "A", "class": "sometimes", "channels": ["news"]}}}, "class"),
        ({"streams": {"a": {"name": "A", "class": "event", "channels": ["nope"]}}}, "streams.a"),
        ({"streams": {"a": {"name": "A", "class": "event"}}}, "stores no subject"),
        (
            {"streams": {"a": {"name": "A", "class": "event", "channels": ["news"], "max_age": "forever"}}},
            "no [retention] setting",
        ),
        ({"streams": {"a": {"name": "A", "class": "event", "channels": ["news"], "max_msgs": -1}}}, "non-negative"),
        (
            {
                "streams": {
                    "a": {"name": "A", "class": "event", "channels": ["news"]},
                    "b": {"name": "B", "class": "event", "subjects": ["tm.news"]},
                }
            },
            "already stored",
        ),
        ({"streams": {"a": {"name": "A", "class": "event", "channels": ["news"], "max_agee": 1}}}, "unknown field"),
        ({"retention": {"k": {"env": "K", "type": "str", "default": 1}}}, "int or float"),
        ({"retention": RETENTION, "buckets": {"a": {"name": "x"}, "b": {"name": "x"}}}, "share a name"),
    ],
)
def test_a_contradictory_table_is_refused_naming_the_entry(raw, message):
    with pytest.raises(table.StreamTableError, match=message.replace("[", r"\[")):
        table.parse(raw)


def test_watchlist_bucket_republishes_on_the_watchlist_channel_subjects():
    from tickmesh.contracts.channels import WATCHLISTS_BUCKET, watchlist_subject

    b = table.bucket("watchlists")
    assert b.name == WATCHLISTS_BUCKET and b.history == 64
    assert table.matches(b.republish, watchlist_subject("AbCdEfGhIjKlMnOpQrStU1"))
    assert table.bucket("presence").marker_ttl


def test_event_channels_have_an_id_field_and_a_stream_state_channels_only_a_state_stream():
    from tickmesh.contracts.messages import channel_schemas, schema

    for kind, name in channel_schemas().items():
        s = schema(name)
        if kind.channel_class == "state":
            try:
                assert table.stream_for_kind(kind).cls == "state"
            except KeyError:
                pass  # a state channel may live without storage (no snapshot then)
        elif kind.channel_class == "event":
            assert s.id_field is not None and s.field(s.id_field) is not None, name
            assert table.stream_for_kind(kind).cls == "event", kind
