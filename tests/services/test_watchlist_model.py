"""The watch-list rules without NATS: what merges, what is refused, who may do what."""

from __future__ import annotations

import pytest

from tickmesh.contracts.codes import ErrorCode
from tickmesh.contracts.messages import schema
from tickmesh.services.watchlists import model
from tickmesh.services.watchlists.model import Watchlist, WatchlistError

NOW = 1_795_630_000_000_000
KNOWN = {"AAPL", "MSFT", "NVDA", "TSLA", "AMZN", "BTC-USD"}


def tradable(symbol: str) -> bool:
    return symbol in KNOWN


def make(*symbols: str) -> Watchlist:
    wl = model.create(user="alice", name="Tech", symbols=symbols, now_us=NOW, tradable=tradable, owned=0)
    return model.share(wl, user="alice", target="bob", role="editor", now_us=NOW)  # version 2


def edit(wl, user, base, *ops):
    return model.edit(wl, user=user, base=base, ops=list(ops), now_us=NOW, tradable=tradable)


def refused(code, fn, *args):
    with pytest.raises(WatchlistError) as info:
        fn(*args)
    assert info.value.code == code, info.value.reason
    return info.value


def test_the_document_is_the_published_schema_and_round_trips():
    wl = make("AAPL", "MSFT")
    doc = wl.doc()
    schema("watchlist").validate(doc)
    assert Watchlist.from_doc(doc) == wl
    assert doc["members"] == [{"user": "alice", "role": "owner"}, {"user": "bob", "role": "editor"}]
    assert model.valid_id(wl.id) and wl.id != make().id


def test_ops_apply_in_order_and_the_change_says_who_did_what():
    wl = make("AAPL", "MSFT")
    new, merged = edit(
        wl,
        "bob",
        2,
        {"op": "add", "symbol": "NVDA", "before": "MSFT"},
        {"op": "move", "symbol": "AAPL"},
        {"op": "note", "symbol": "MSFT", "text": "earnings"},
        {"op": "add", "symbol": "MSFT"},
    )  # already there: dropped
    assert new.symbols == ["NVDA", "MSFT", "AAPL"] and not merged
    assert [i.get("note") for i in new.items] == [None, "earnings", None]
    assert new.change == {
        "version": 3,
        "user": "bob",
        "ts": NOW,
        "action": "edit",
        "merged": False,
        "ops": [
            {"op": "add", "symbol": "NVDA", "before": "MSFT"},
            {"op": "move", "symbol": "AAPL"},
            {"op": "note", "symbol": "MSFT", "text": "earnings"},
        ],
    }
    same, _ = edit(new, "bob", 3, {"op": "remove", "symbol": "TSLA"})
    assert same is new  # nothing to do: no new version


@pytest.mark.parametrize(
    "first,second,result",
    [
        # different symbols always merge
        (
            {"op": "move", "symbol": "AAPL"},
            {"op": "move", "symbol": "MSFT", "before": "AAPL"},
            ["NVDA", "MSFT", "AAPL"],
        ),
        (
            {"op": "remove", "symbol": "AAPL"},
            {"op": "add", "symbol": "TSLA", "before": "AAPL"},
            ["MSFT", "NVDA", "TSLA"],
        ),
        (
            {"op": "add", "symbol": "TSLA"},
            {"op": "add", "symbol": "TSLA", "before": "AAPL"},
            ["AAPL", "MSFT", "NVDA", "TSLA"],
        ),
        ({"op": "remove", "symbol": "MSFT"}, {"op": "remove", "symbol": "MSFT"}, ["AAPL", "NVDA"]),
        ({"op": "move", "symbol": "MSFT"}, {"op": "remove", "symbol": "MSFT"}, ["AAPL", "NVDA"]),
        ({"op": "note", "symbol": "MSFT", "text": "a"}, {"op": "move", "symbol": "MSFT"}, ["AAPL", "NVDA", "MSFT"]),
        ({"op": "move", "symbol": "MSFT"}, {"op": "note", "symbol": "MSFT", "text": "b"}, ["AAPL", "NVDA", "MSFT"]),
    ],
)
def test_concurrent_edits_that_merge(first, second, result):
    wl = make("AAPL", "MSFT", "NVDA")
    after_first, _ = edit(wl, "alice", 2, first)
    after_second, merged = edit(after_first, "bob", 2, second)  # made on version 2 too
    assert after_second.symbols == result
    assert merged is (after_second is not after_first)


@pytest.mark.parametrize(
    "first,second,why",
    [
        ({"op": "move", "symbol": "MSFT"}, {"op": "move", "symbol": "MSFT", "before": "AAPL"}, "was moved"),
        ({"op": "note", "symbol": "MSFT", "text": "a"}, {"op": "note", "symbol": "MSFT", "text": "b"}, "note of MSFT"),
        ({"op": "remove", "symbol": "MSFT"}, {"op": "move", "symbol": "MSFT"}, "no longer"),
        ({"op": "remove", "symbol": "MSFT"}, {"op": "note", "symbol": "MSFT", "text": "b"}, "no longer"),
    ],
)
def test_concurrent_edits_of_the_same_symbol_that_are_refused_with_the_current_list(first, second, why):
    wl = make("AAPL", "MSFT", "NVDA")
    after_first, _ = edit(wl, "alice", 2, first)
    exc = refused(ErrorCode.EDIT_CONFLICT, edit, after_first, "bob", 2, {"op": "add", "symbol": "TSLA"}, second)
    assert why in exc.reason
    assert exc.data == {"watchlist": after_first.doc()}  # the loser gets the current version
    if second["symbol"] in after_first.symbols:  # re-applied on it, the same intent goes through
        again, merged = edit(after_first, "bob", after_first.version, second)
        assert again.version == after_first.version + 1 and not merged


def test_an_edit_may_move_and_note_what_it_added_itself():
    wl = make("AAPL")
    new, _ = edit(
        wl,
        "bob",
        2,
        {"op": "add", "symbol": "TSLA"},
        {"op": "move", "symbol": "TSLA", "before": "AAPL"},
        {"op": "note", "symbol": "TSLA", "text": "x"},
    )
    assert new.symbols == ["TSLA", "AAPL"]


def test_roles_and_strangers():
    wl = model.share(make("AAPL"), user="alice", target="carol", role="viewer", now_us=NOW)
    refused(ErrorCode.FORBIDDEN, edit, wl, "carol", 3, {"op": "remove", "symbol": "AAPL"})
    stranger = refused(ErrorCode.FORBIDDEN, edit, wl, "mallory", 3, {"op": "remove", "symbol": "AAPL"})
    assert stranger.reason == model.NOT_FOUND and stranger.data is None  # nothing leaks
    with pytest.raises(WatchlistError):
        model.share(wl, user="bob", target="dave", role="viewer", now_us=NOW)  # only the owner shares
    with pytest.raises(WatchlistError):
        model.unshare(wl, user="bob", target="carol", now_us=NOW)
    left = model.unshare(wl, user="carol", target="carol", now_us=NOW)  # a member may leave
    assert left.role_of("carol") is None and left.change["action"] == "unshare"
    with pytest.raises(WatchlistError):
        model.unshare(wl, user="alice", target="alice", now_us=NOW)


def test_bad_edits_and_limits():
    wl = make("AAPL")
    refused(ErrorCode.UNKNOWN_SYMBOL, edit, wl, "bob", 2, {"op": "add", "symbol": "ZZZZ"})
    refused(ErrorCode.INVALID_FIELD, edit, wl, "bob", 2, {"op": "remove", "symbol": "AAPL", "text": "x"})
    refused(ErrorCode.INVALID_FIELD, edit, wl, "bob", 2, {"op": "note", "symbol": "AAPL", "before": "AAPL"})
    refused(ErrorCode.EDIT_CONFLICT, edit, wl, "bob", 9, {"op": "remove", "symbol": "AAPL"})
    with pytest.raises(WatchlistError) as info:
        model.create(user="a", name="x", symbols=(), now_us=NOW, tradable=tradable, owned=model.MAX_OWNED)
    assert info.value.code == ErrorCode.WATCHLIST_LIMIT
    with pytest.raises(WatchlistError):
        model.create(user="a", name="   ", symbols=(), now_us=NOW, tradable=tradable, owned=0)
