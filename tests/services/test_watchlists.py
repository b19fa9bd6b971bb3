"""The watchlists service over a real nats-server: commands as the edge sends them, the stored list
republished on tm.wl.<id>, access rules on every command, and concurrent edits from two
connections (two edges) against two service instances: a Hypothesis property test that they
converge and that no acknowledged edit is lost."""

from __future__ import annotations

import asyncio
import contextlib

import nats
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.services.conftest import command, service
from tests.support.natsserver import NatsServer
from tests.support.timing import t
from tickmesh import streams
from tickmesh.contracts.channels import watchlist_subject
from tickmesh.contracts.codes import ErrorCode
from tickmesh.contracts.messages import SEQ_HEADER, schema
from tickmesh.services.watchlists import service as wl_service

STRANGER_REASON = "no such watch-list, or it is not shared with you"


class Feed:
    """A subscriber of tm.wl.<id>, as an edge is: every revision in order, with its version."""

    def __init__(self) -> None:
        self.docs: list[dict] = []
        self.deleted = False
        self.changed = asyncio.Event()

    async def on_msg(self, msg) -> None:
        if msg.headers and msg.headers.get("KV-Operation"):
            self.deleted = True
        else:
            doc = orjson.loads(msg.data)
            assert int(msg.headers[SEQ_HEADER]) == doc["version"]
            self.docs.append(doc)
        self.changed.set()

    async def until(self, check, timeout: float = 5.0) -> None:
        deadline = asyncio.get_running_loop().time() + t(timeout)
        while not check():
            self.changed.clear()
            left = deadline - asyncio.get_running_loop().time()
            assert left > 0, f"feed has {self.docs[-1:] or 'nothing'}"
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)


async def test_create_share_edit_history_and_the_republished_state(nats_server, nc):
    async with service(wl_service, nats_server.url):
        created = await command(
            nc, "watchlist.create", "alice", {"name": " Tech ", "symbols": ["AAPL", "MSFT", "AAPL"]}
        )
        assert created.ok, created.reason
        doc = created.data["watchlist"]
        wl_id = doc["id"]
        assert (doc["name"], doc["version"], [i["symbol"] for i in doc["items"]]) == ("Tech", 1, ["AAPL", "MSFT"])
        feed = Feed()
        await nc.subscribe(watchlist_subject(wl_id), cb=feed.on_msg)
        shared = await command(nc, "watchlist.share", "alice", {"id": wl_id, "user": "bob", "role": "editor"})
        assert shared.ok and shared.data["watchlist"]["version"] == 2
        edited = await command(
            nc,
            "watchlist.edit",
            "bob",
            {
                "id": wl_id,
                "base": 2,
                "ops": [
                    {"op": "add", "symbol": "NVDA", "before": "AAPL"},
                    {"op": "note", "symbol": "MSFT", "text": "earnings Tue"},
                ],
            },
        )
        assert edited.ok, edited.reason
        assert edited.data["merged"] is False
        await feed.until(lambda: feed.docs and feed.docs[-1]["version"] == 3)
        last = feed.docs[-1]
        schema("watchlist").validate(last)
        assert [i["symbol"] for i in last["items"]] == ["NVDA", "AAPL", "MSFT"]
        assert last["change"]["user"] == "bob" and last["change"]["action"] == "edit"
        assert [d["version"] for d in feed.docs] == [2, 3]
        listed = await command(nc, "watchlist.list", "bob", {})
        assert listed.data["watchlists"] == [
            {"id": wl_id, "name": "Tech", "owner": "alice", "role": "editor", "version": 3, "size": 3}
        ]
        history = await command(nc, "watchlist.history", "bob", {"id": wl_id})
        assert [(c["version"], c["user"], c["action"]) for c in history.data["changes"]] == [
            (3, "bob", "edit"),
            (2, "alice", "share"),
            (1, "alice", "create"),
        ]


async def test_a_stranger_is_refused_alike_on_every_command_and_revocation_is_immediate(nats_server, nc):
    async with service(wl_service, nats_server.url):
        wl_id = (await command(nc, "watchlist.create", "alice", {"name": "Mine", "symbols": ["AAPL"]})).data[
            "watchlist"
        ]["id"]
        await command(nc, "watchlist.share", "alice", {"id": wl_id, "user": "bob", "role": "viewer"})
        missing = "A" * 22
        for target in (wl_id, missing, "../../etc"):
            for name, data in [
                ("watchlist.edit", {"id": target, "base": 1, "ops": [{"op": "remove", "symbol": "AAPL"}]}),
                ("watchlist.share", {"id": target, "user": "mallory", "role": "editor"}),
                ("watchlist.unshare", {"id": target, "user": "bob"}),
                ("watchlist.history", {"id": target}),
                ("watchlist.delete", {"id": target}),
            ]:
                reply = await command(nc, name, "mallory", data)
                assert (reply.ok, reply.code, reply.reason) == (False, ErrorCode.FORBIDDEN, STRANGER_REASON), name
        assert (await command(nc, "watchlist.list", "mallory", {})).data == {"watchlists": []}
        viewer = await command(
            nc, "watchlist.edit", "bob", {"id": wl_id, "base": 2, "ops": [{"op": "remove", "symbol": "AAPL"}]}
        )
        assert viewer.code == ErrorCode.FORBIDDEN and "viewer" in viewer.reason
        assert (await command(nc, "watchlist.unshare", "alice", {"id": wl_id, "user": "bob"})).ok
        gone = await command(nc, "watchlist.history", "bob", {"id": wl_id})
        assert (gone.code, gone.reason) == (ErrorCode.FORBIDDEN, STRANGER_REASON)
        feed = Feed()
        await nc.subscribe(watchlist_subject(wl_id), cb=feed.on_msg)
        assert (await command(nc, "watchlist.delete", "alice", {"id": wl_id})).ok
        await feed.until(lambda: feed.deleted)
        assert (await command(nc, "watchlist.history", "alice", {"id": wl_id})).code == ErrorCode.FORBIDDEN


async def test_two_moves_of_one_symbol_the_second_is_refused_with_the_current_list(nats_server, nc):
    async with service(wl_service, nats_server.url):
        doc = (await command(nc, "watchlist.create", "alice", {"name": "L", "symbols": ["AAPL", "MSFT", "NVDA"]})).data[
            "watchlist"
        ]
        wl_id = doc["id"]
        await command(nc, "watchlist.share", "alice", {"id": wl_id, "user": "bob", "role": "editor"})
        first = await command(
            nc,
            "watchlist.edit",
            "alice",
            {"id": wl_id, "base": 2, "ops": [{"op": "move", "symbol": "NVDA", "before": "AAPL"}]},
        )
        second = await command(
            nc, "watchlist.edit", "bob", {"id": wl_id, "base": 2, "ops": [{"op": "move", "symbol": "NVDA"}]}
        )
        assert first.ok and not second.ok
        assert second.code == ErrorCode.EDIT_CONFLICT and "NVDA was moved" in second.reason
        assert second.data["watchlist"] == first.data["watchlist"]  # the loser has the current version


# -- the property: concurrent edits from two edges converge, and none is lost ------------------

SYMBOLS = ["AAPL", "MSFT", "NVDA", "TSLA", "AMZN"]
op_strategy = st.one_of(
    st.builds(
        lambda s, b: {"op": "add", "symbol": s, **({"before": b} if b else {})},
        st.sampled_from(SYMBOLS),
        st.none() | st.sampled_from(SYMBOLS),
    ),
    st.builds(lambda s: {"op": "remove", "symbol": s}, st.sampled_from(SYMBOLS)),
    st.builds(
        lambda s, b: {"op": "move", "symbol": s, **({"before": b} if b else {})},
        st.sampled_from(SYMBOLS),
        st.none() | st.sampled_from(SYMBOLS),
    ),
    st.builds(
        lambda s, x: {"op": "note", "symbol": s, "text": x}, st.sampled_from(SYMBOLS), st.sampled_from(["", "a", "b"])
    ),
)
edits = st.lists(st.lists(op_strategy, min_size=1, max_size=3), min_size=1, max_size=6)


def replay(items: list[dict], ops: list[dict]) -> list[dict]:
    """An independent reading of the op semantics, applied to ``items`` (symbol, note)."""
    items = [dict(i) for i in items]
    for op in ops:
        symbols = [i["symbol"] for i in items]
        s, before = op["symbol"], op.get("before")
        if op["op"] in ("add", "move"):
            item = {"symbol": s} if op["op"] == "add" else items.pop(symbols.index(s))
            symbols = [i["symbol"] for i in items]
            items.insert(symbols.index(before) if before in symbols and before != s else len(items), item)
        elif op["op"] == "remove":
            items.pop(symbols.index(s))
        else:
            item = items[symbols.index(s)]
            item.pop("note", None)
            if op.get("text"):
                item["note"] = op["text"]
    return items


def invalid_alone(items: list[dict], ops: list[dict]) -> bool:
    """Whether ``ops`` fail even with nobody else editing: a move or note of a symbol that the
    list (as the edit goes) does not hold."""
    present = {i["symbol"] for i in items}
    for op in ops:
        if op["op"] == "add":
            present.add(op["symbol"])
        elif op["op"] == "remove":
            present.discard(op["symbol"])
        elif op["symbol"] not in present:
            return True
    return False


def visible(doc: dict) -> list[dict]:
    return [{k: v for k, v in i.items() if k in ("symbol", "note")} for i in doc["items"]]


@pytest.fixture(scope="module")
def shared_nats(tmp_path_factory):
    server = NatsServer(tmp_path_factory.mktemp("wl-nats")).start()
    yield server
    server.stop()


async def _client(url: str, user: str, wl_id: str, script: list[list[dict]], start: asyncio.Event) -> list[tuple]:
    """An editor on its own connection (its own edge): sends its edits with the base it knows,
    re-basing on the list a conflict returns. Returns (base, ops, reply) for each edit."""
    nc = await nats.connect(url)
    try:
        known = (await command(nc, "watchlist.history", user, {"id": wl_id})).data["changes"][0]["version"]
        await start.wait()
        results = []
        for ops in script:
            reply = await command(nc, "watchlist.edit", user, {"id": wl_id, "base": known, "ops": ops})
            results.append((known, ops, reply))
            if reply.ok or reply.code == ErrorCode.EDIT_CONFLICT:
                known = reply.data["watchlist"]["version"]
            await asyncio.sleep(0)
        return results
    finally:
        await nc.close()


_examples = __import__("itertools").count()


async def _scenario(url: str, alice_edits, bob_edits) -> None:
    n = next(_examples)  # fresh users per example: the server outlives examples (50 lists per owner)
    alice, bob = f"alice{n}", f"bob{n}"
    nc = await nats.connect(url)
    await streams.ensure(nc.jetstream())
    try:
        async with service(wl_service, url), service(wl_service, url):  # two instances, one queue group
            doc = (await command(nc, "watchlist.create", alice, {"name": "P", "symbols": SYMBOLS[:3]})).data[
                "watchlist"
            ]
            wl_id = doc["id"]
            await command(nc, "watchlist.share", alice, {"id": wl_id, "user": bob, "role": "editor"})
            feed = Feed()
            await nc.subscribe(watchlist_subject(wl_id), cb=feed.on_msg)
            await nc.flush()
            start = asyncio.Event()
            runs = [
                asyncio.ensure_future(_client(url, alice, wl_id, alice_edits, start)),
                asyncio.ensure_future(_client(url, bob, wl_id, bob_edits, start)),
            ]
            await asyncio.sleep(0.05)
            start.set()
            results = [r for run in runs for r in await run]
            final = (await command(nc, "watchlist.history", alice, {"id": wl_id})).data["changes"][0]["version"]
            await feed.until(lambda: final == 2 or (feed.docs and feed.docs[-1]["version"] == final))
    finally:
        await nc.close()
    # 1. Every subscriber sees every version once, in order: the log is serial.
    versions = [d["version"] for d in feed.docs]
    assert versions == list(range(3, final + 1)), versions
    # 2. Replaying the log's ops from the start gives the stored list: no write was lost.
    items = [{"symbol": s} for s in SYMBOLS[:3]]
    by_version, states = {}, {2: items}
    for d in feed.docs:
        items = replay(items, d["change"]["ops"])
        assert items == visible(d), d["change"]
        by_version[d["version"]], states[d["version"]] = d["change"], items
    # 3. Each acknowledged edit is in the log, exactly as acknowledged, by its author.
    for base, ops, reply in results:
        assert reply.ok or reply.code in (ErrorCode.EDIT_CONFLICT, ErrorCode.UNKNOWN_SYMBOL), reply.reason
        if reply.ok:
            change = reply.data["watchlist"]["change"]
            if reply.data["watchlist"]["version"] > base and change["ops"]:
                assert by_version[change["version"]] == change
        elif reply.code == ErrorCode.EDIT_CONFLICT:
            # 4. A refusal is justified by a change to one of its symbols by someone else after base.
            current = reply.data["watchlist"]["version"]
            touched = {op["symbol"] for v, c in by_version.items() if base < v <= current for op in c.get("ops", [])}
            assert touched & {op["symbol"] for op in ops} or invalid_alone(states[base], ops), (base, ops, reply.reason)


@settings(
    max_examples=int(__import__("os").environ.get("TICKMESH_HYPOTHESIS_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(alice=edits, bob=edits)
def test_concurrent_edits_from_two_edges_converge_and_none_is_lost(shared_nats, alice, bob):
    asyncio.run(asyncio.wait_for(_scenario(shared_nats.url, alice, bob), t(60)))
