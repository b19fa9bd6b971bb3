"""Shared watch-lists through real edges and the real watchlists service: live updates with who
changed what, a stranger refused alike on every path, revocation and deletion ending access at
once, and concurrent edits from two edges converging with no acknowledged edit lost."""

from __future__ import annotations

import asyncio
import itertools
import os
import time

import pytest
from hypothesis import HealthCheck, given, settings

from tests.services.test_watchlists import SYMBOLS, edits, replay, visible
from tests.support.procs import Proc, base_env
from tests.support.timing import t
from tests.support.tokens import token
from tests.support.wsclient import Client

FAST = dict(
    EDGE_PRESENCE_HEARTBEAT_S="1",
    EDGE_PRESENCE_GRACE_S="1",
    EDGE_PRESENCE_FLUSH_MS="50",
    EDGE_DRAIN_DEADLINE_S="1",
    EDGE_DRAIN_SPREAD_MS="100",
)
NOT_SHARED = "no such watch-list, or it is not shared with you"


@pytest.fixture
def watchlists(nats_mon, tmp_path):
    """``tickmesh service watchlists`` as its own process, answering once it says it runs."""
    import sys

    proc = Proc(
        [sys.executable, "-m", "tickmesh", "service", "watchlists"],
        base_env(NATS_URL=nats_mon.url),
        tmp_path / "watchlists.log",
    )
    deadline = time.monotonic() + t(20)
    while "watchlists running" not in proc.output():
        assert proc.proc.poll() is None and time.monotonic() < deadline, proc.output()[-2000:]
        time.sleep(0.05)
    yield proc
    proc.stop()


async def login(edge, user: str) -> Client:
    return await Client.login(edge.ws_url, token(user))


async def ask(client: Client, op: str, **fields) -> dict:
    """Send a request and return its reply, keeping the frames that arrived before it (a list's
    new version may well overtake the reply to the command that made it)."""
    reply, seen = await client.request(op, timeout=10, **fields)
    client.pending[:0] = seen
    return reply


async def cmd(client: Client, command: str, **data) -> dict:
    return await ask(client, "cmd", name=command, data=data)


async def frame(client: Client, check, timeout: float = 10) -> dict:
    """The next frame ``check`` accepts (others are skipped)."""
    deadline = time.monotonic() + t(timeout)
    while True:
        f = await client.recv(max(0.01, (deadline - time.monotonic()) / t(1)))
        if check(f):
            return f


def msg_on(ch: str, version: int | None = None):
    return lambda f: f.get("op") == "msg" and f.get("ch") == ch and (version is None or f["seq"] >= version)


@pytest.mark.engines("direct")
async def test_a_shared_list_is_edited_live_across_edges_and_a_stranger_is_refused_everywhere(edge_factory, watchlists):
    a, b = edge_factory(**FAST), edge_factory(**FAST)
    alice, bob, mallory = await login(a, "alice"), await login(b, "bob"), await login(b, "mallory")
    created = await cmd(alice, "watchlist.create", name="Tech", symbols=["AAPL", "MSFT"])
    assert created["op"] == "ok", created
    wl_id = created["data"]["watchlist"]["id"]
    ch = f"watchlist:{wl_id}"
    # A stranger: the same 301 for a list that exists and one that does not, on every path.
    for target in (wl_id, "Z" * 22):
        for op, fields in (
            ("sub", {"ch": f"watchlist:{target}"}),
            ("sub", {"ch": f"presence:watchlist.{target}"}),
            ("join", {"topic": f"watchlist.{target}"}),
        ):
            reply, _ = await mallory.request(op, **fields)
            assert (reply["code"], reply["reason"]) == (301, NOT_SHARED), (op, reply)
        for name, data in (
            ("watchlist.edit", {"id": target, "base": 1, "ops": [{"op": "remove", "symbol": "AAPL"}]}),
            ("watchlist.history", {"id": target}),
            ("watchlist.share", {"id": target, "user": "x", "role": "viewer"}),
        ):
            reply = await cmd(mallory, name, **data)
            assert (reply["code"], reply["reason"]) == (301, NOT_SHARED), (name, reply)
    assert (await cmd(alice, "watchlist.share", id=wl_id, user="bob", role="editor"))["op"] == "ok"
    reply = await ask(bob, "sub", ch=ch)
    assert reply["op"] == "ok", reply
    snap = await frame(bob, msg_on(ch))
    assert snap["seq"] == snap["data"]["version"] == 2
    assert (await ask(alice, "sub", ch=ch))["op"] == "ok"
    edit = await cmd(
        alice,
        "watchlist.edit",
        id=wl_id,
        base=2,
        ops=[{"op": "add", "symbol": "NVDA", "before": "AAPL"}, {"op": "note", "symbol": "MSFT", "text": "earnings"}],
    )
    assert edit["op"] == "ok" and edit["data"]["merged"] is False
    update = await frame(bob, msg_on(ch, 3))
    assert [i["symbol"] for i in update["data"]["items"]] == ["NVDA", "AAPL", "MSFT"]
    assert update["data"]["change"]["user"] == "alice"  # who changed what
    # Bob edits from the other edge on the version he had seen before: merged.
    merged = await cmd(bob, "watchlist.edit", id=wl_id, base=2, ops=[{"op": "remove", "symbol": "AAPL"}])
    assert merged["op"] == "ok" and merged["data"]["merged"] is True
    await frame(alice, msg_on(ch, 4))
    # Two moves of one symbol: the second is refused with the current list, over the edge.
    await cmd(alice, "watchlist.edit", id=wl_id, base=4, ops=[{"op": "move", "symbol": "MSFT", "before": "NVDA"}])
    lost = await cmd(bob, "watchlist.edit", id=wl_id, base=4, ops=[{"op": "move", "symbol": "MSFT"}])
    assert lost["code"] == 610 and lost["data"]["watchlist"]["version"] == 5


@pytest.mark.engines("direct")
async def test_revoking_a_share_and_deleting_a_list_end_access_at_once(edge_factory, watchlists):
    a, b = edge_factory(**FAST), edge_factory(**FAST)
    alice, bob = await login(a, "alice"), await login(b, "bob")
    wl_id = (await cmd(alice, "watchlist.create", name="L", symbols=["AAPL"]))["data"]["watchlist"]["id"]
    await cmd(alice, "watchlist.share", id=wl_id, user="bob", role="viewer")
    ch, pch, topic = f"watchlist:{wl_id}", f"presence:watchlist.{wl_id}", f"watchlist.{wl_id}"
    for op, fields in (("sub", {"ch": ch}), ("sub", {"ch": pch}), ("join", {"topic": topic})):
        assert (await ask(bob, op, **fields))["op"] == "ok"
    assert (await ask(alice, "sub", ch=pch))["op"] == "ok"
    await frame(
        alice,
        lambda f: (
            f.get("ch") == pch
            and any(m["user"] == "bob" for m in f["data"].get("members", []) + f["data"].get("joins", []))
        ),
    )
    revoked = await cmd(alice, "watchlist.unshare", id=wl_id, user="bob")
    assert revoked["op"] == "ok"
    ended = {}
    while len(ended) < 3:
        f = await bob.recv(10)
        assert not (
            f.get("op") == "msg" and f.get("ch") == ch and f["seq"] >= revoked["data"]["watchlist"]["version"]
        ), "the revoking version reached bob"
        if f["op"] == "unsub":
            ended[f["ch"]] = f["code"]
        elif f["op"] == "leave":
            ended[f["topic"]] = f["code"]
    assert ended == {ch: 301, pch: 301, topic: 301}
    await frame(alice, lambda f: f.get("ch") == pch and "bob" in f["data"].get("leaves", []))
    assert (await ask(bob, "sub", ch=ch))["code"] == 301
    # Deleting ends everyone's subscription (201: the list is gone).
    assert (await ask(alice, "sub", ch=ch))["op"] == "ok"
    assert (await cmd(alice, "watchlist.delete", id=wl_id))["op"] == "ok"
    gone = await frame(alice, lambda f: f.get("op") == "unsub" and f.get("ch") == ch)
    assert gone["code"] == 201


_n = itertools.count()


async def _concurrent(a, b, alice_edits, bob_edits) -> None:
    n = next(_n)
    owner, editor = f"owner{n}", f"editor{n}"
    alice, bob = await Client.login(a.ws_url, token(owner)), await Client.login(b.ws_url, token(editor))
    try:
        doc = (await cmd(alice, "watchlist.create", name="P", symbols=SYMBOLS[:3]))["data"]["watchlist"]
        wl_id, ch = doc["id"], f"watchlist:{doc['id']}"
        await cmd(alice, "watchlist.share", id=wl_id, user=editor, role="editor")
        for c in (alice, bob):
            assert (await ask(c, "sub", ch=ch))["op"] == "ok"

        async def run(client: Client, script) -> list[dict]:
            known, replies = 2, []
            for ops in script:
                reply = await cmd(client, "watchlist.edit", id=wl_id, base=known, ops=ops)
                replies.append(reply)
                if "data" in reply:
                    known = reply["data"]["watchlist"]["version"]
            return replies

        replies = [r for rs in await asyncio.gather(run(alice, alice_edits), run(bob, bob_edits)) for r in rs]
        changes = (await cmd(alice, "watchlist.history", id=wl_id))["data"]["changes"][::-1]
        final = changes[-1]["version"]
        # Both editors, on two edges, converge on the stored list.
        last = []
        for c in (alice, bob):
            f = await frame(c, msg_on(ch, final))
            last.append(f["data"])
        assert last[0] == last[1] and last[0]["version"] == final
        # Replaying the history from the start gives that list: every write built on the previous.
        items = [{"symbol": s} for s in SYMBOLS[:3]]
        for change in changes[2:]:
            items = replay(items, change["ops"])
        assert items == visible(last[0])
        # Every acknowledged edit is in the history, as acknowledged.
        by_version = {c["version"]: c for c in changes}
        for reply in replies:
            assert reply["op"] == "ok" or reply["code"] == 610, reply
            if reply["op"] == "ok" and reply["data"]["watchlist"]["change"]["action"] == "edit":
                change = reply["data"]["watchlist"]["change"]
                assert by_version[change["version"]] == change
    finally:
        await alice.close()
        await bob.close()


@pytest.mark.engines("direct")
def test_concurrent_edits_from_two_edges_converge_with_no_edit_lost(edge_factory, watchlists):
    a, b = edge_factory(**FAST), edge_factory(**FAST)

    @settings(
        max_examples=int(os.environ.get("TICKMESH_HYPOTHESIS_EXAMPLES", "8")),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(alice=edits, bob=edits)
    def prop(alice, bob):
        asyncio.run(asyncio.wait_for(_concurrent(a, b, alice, bob), t(60)))

    prop()
