"""The admin commands `flag.list` and `flag.update` as the edge forwards them to the flags service."""

import asyncio
import uuid

import nats.errors
import pytest

from tests.support.timing import eventually
from tickmesh.contracts import commands as cmds
from tickmesh.flags import FlagStore
from tickmesh.services.flags.service import serve
from tickmesh.services.flags.settings import FlagServiceSettings


@pytest.fixture
async def service(nc):
    stop = asyncio.Event()
    task = asyncio.ensure_future(serve(FlagServiceSettings(), nc, stop))

    async def answers() -> bool:  # the service subscribes in the background task
        try:
            return (await request(nc, "flag.list", {})).ok
        except nats.errors.NoRespondersError:
            return False

    await eventually(answers, timeout=10, interval=0.05)
    try:
        yield nc
    finally:
        stop.set()
        await task


async def request(nc, name, data, *, user="root", roles=("admin",)):
    body = cmds.encode_request(name, user=user, roles=list(roles), cmd_id=uuid.uuid4().hex, data=data)
    msg = await nc.request(cmds.command_subject(name), body, timeout=5)
    return cmds.decode_reply(msg.data)


async def test_an_admin_changes_flags_and_the_audit_names_them(service):
    nc = service
    reply = await request(nc, "flag.update", {"name": "ws.msgpack", "action": "create", "type": "boolean"})
    assert reply.ok and reply.data["flag"]["updated_by"] == "root"
    reply = await request(nc, "flag.update", {"name": "ws.msgpack", "action": "rollout", "percent": "10"})
    assert reply.data["flag"]["rollout"] == {"percent": "10", "value": True}
    listed = await request(nc, "flag.list", {})
    assert [f["name"] for f in listed.data["flags"]] == ["ws.msgpack"] and listed.data["revision"] >= 2
    audit = await (await FlagStore.open(nc)).audit("ws.msgpack")
    assert [(r["by"], r["via"]) for r in audit] == [("root", "command"), ("root", "command")]


@pytest.mark.parametrize(
    "data, code",
    [
        ({"name": "nope", "action": "kill"}, 640),
        ({"name": "x", "action": "create", "type": "string"}, 641),
        ({"name": "x", "action": "create", "type": "boolean", "value": "yes"}, 641),
        ({"name": "x", "action": "kill", "revision": 999}, 642),
    ],
)
async def test_refusals_carry_their_codes(service, data, code):
    reply = await request(service, "flag.update", data)
    assert not reply.ok and reply.code == code and reply.reason


async def test_a_non_admin_request_is_refused_even_if_it_reaches_the_service(service):
    reply = await request(service, "flag.list", {}, user="mallory", roles=("user",))
    assert not reply.ok and reply.code == 301
