"""The bucket, the audit stream and the live API against a real nats-server."""

import asyncio

import nats
import orjson
import pytest

from tests.support.timing import t
from tickmesh.contracts.codes import ErrorCode
from tickmesh.flags import FlagError, Flags, FlagStore, Subject
from tickmesh.flags.store import AUDIT_STREAM


async def wait_for(predicate, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + t(timeout)
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_changes_are_stored_audited_and_reach_a_live_reader(nc):
    store = await FlagStore.open(nc)
    flags = await Flags.open(nc)
    seen: list[frozenset[str]] = []
    flags.on_change(seen.append)
    try:
        assert flags.value("ws.msgpack", Subject("alice"), "absent") == "absent"
        flag, rev = await store.change(
            {"name": "ws.msgpack", "action": "create", "type": "boolean"}, by="ops", via="cli"
        )
        await wait_for(lambda: flags.get("ws.msgpack") == flag)
        assert flags.revision == rev and seen[-1] == frozenset({"ws.msgpack"})
        await store.change({"name": "ws.msgpack", "action": "add_rule", "users": ["alice"]}, by="carol", via="command")
        await wait_for(lambda: flags.value("ws.msgpack", Subject("alice")) is True)
        assert flags.value("ws.msgpack", Subject("bob")) is False
        await store.change({"name": "ws.msgpack", "action": "delete"}, by="carol", via="command")
        await wait_for(lambda: flags.get("ws.msgpack") is None)
        records = await store.audit("ws.msgpack")
        assert [(r["action"], r["by"], r["via"]) for r in records] == [
            ("create", "ops", "cli"),
            ("add_rule", "carol", "command"),
            ("delete", "carol", "command"),
        ]
        assert "before" not in records[0] and records[1]["after"]["rules"] == [{"users": ["alice"], "value": True}]
        assert "after" not in records[2]
        info = await nc.jetstream().stream_info(AUDIT_STREAM)
        assert info.state.messages == 3
    finally:
        await flags.close()


async def test_a_reader_started_later_sees_the_same_values_and_revision(nc):
    store = await FlagStore.open(nc)
    await store.change({"name": "theme", "action": "create", "type": "string", "value": "classic"}, by="ops", via="cli")
    _, rev = await store.change(
        {"name": "theme", "action": "rollout", "percent": "50", "value": "dark"}, by="ops", via="cli"
    )
    first, second = await Flags.open(nc), await Flags.open(nc)
    try:
        assert first.revision == second.revision == rev
        users = [f"u{i}" for i in range(200)]
        assert [first.value("theme", Subject(u)) for u in users] == [second.value("theme", Subject(u)) for u in users]
        assert {first.value("theme", Subject(u)) for u in users} == {"classic", "dark"}
    finally:
        await first.close()
        await second.close()


async def test_compare_and_set_never_loses_a_concurrent_change(nc):
    store = await FlagStore.open(nc)
    await store.change({"name": "limits", "action": "create", "type": "json", "value": {"max": 1}}, by="ops", via="cli")
    await asyncio.gather(
        *(
            store.change(
                {"name": "limits", "action": "add_rule", "users": [f"user{i}"], "value": {"max": i}},
                by=f"admin{i}",
                via="command",
            )
            for i in range(6)
        )
    )
    flag, _ = await store.get("limits")
    assert sorted(next(iter(r.users)) for r in flag.rules) == [f"user{i}" for i in range(6)]
    _, rev = await store.get("limits")
    with pytest.raises(FlagError) as info:
        await store.change({"name": "limits", "action": "kill", "revision": rev - 1}, by="ops", via="cli")
    assert info.value.code == ErrorCode.FLAG_CONFLICT
    assert not (await store.get("limits"))[0].killed


async def test_a_hand_written_bad_entry_is_ignored_everywhere_and_logged(nc, caplog):
    store = await FlagStore.open(nc)
    await store.kv.put("broken", orjson.dumps({"type": "boolean", "default": "yes"}))
    flags = await Flags.open(nc)
    try:
        assert flags.get("broken") is None
        assert flags.value("broken", Subject("a"), "fallback") == "fallback"
        assert any(getattr(r, "event", "") == "flags.bad_entry" for r in caplog.records)
        flags_list, _ = await store.list()
        assert [f.name for f in flags_list] == []
    finally:
        await flags.close()


async def test_the_watch_recovers_after_nats_restarts(nats_server):
    client = await nats.connect(nats_server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
    try:
        store = await FlagStore.open(client)
        flags = await Flags.open(client)
        await store.change({"name": "a", "action": "create", "type": "boolean", "value": True}, by="ops", via="cli")
        await wait_for(lambda: flags.value("a") is True)
        nats_server.restart()
        for _ in range(50):  # JetStream needs a moment after the restart to accept writes
            try:
                await store.change({"name": "a", "action": "set", "value": False}, by="ops", via="cli")
                break
            except Exception:
                await asyncio.sleep(0.2)
        await wait_for(lambda: flags.value("a") is False, timeout=30)
        await flags.close()
    finally:
        await client.close()
