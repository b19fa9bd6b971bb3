"""NATS permissions per component (contracts/permissions.toml), enforced by a real nats-server
configured the way ``tickmesh up`` configures its embedded one (ops/natsauth.py)."""

from __future__ import annotations

import asyncio
import json
import stat

import pytest

from tests.support.natsserver import NatsServer
from tests.support.timing import t
from tickmesh import streams
from tickmesh.contracts import permissions
from tickmesh.contracts.channels import REVOKE_SUBJECT, Kind, tick_subject, user_subject
from tickmesh.natsconn import Credentials, NatsAuthError, connect
from tickmesh.ops import natsauth
from tickmesh.publish import PublishDenied, Publisher

ROLES = [r for r in permissions.roles() if r != natsauth.ADMIN]
FORGED_TRADE = {
    "exec_id": "x",
    "order_id": "o",
    "client_order_id": "c",
    "symbol": "AAPL",
    "side": "buy",
    "order_type": "market",
    "status": "filled",
    "quantity": "1",
}


@pytest.fixture
def secured(tmp_path):
    """A nats-server with every role of permissions.toml as a user, and the streams in place."""
    passwords = natsauth.local_credentials(tmp_path, ROLES)
    conf = natsauth.write_server_config(tmp_path, passwords)
    server = NatsServer(tmp_path / "server", extra=["-c", str(conf)]).start()
    server.passwords = passwords
    server.conf = conf
    try:
        yield server
    finally:
        server.stop()


def creds(server, user: str) -> Credentials:
    return Credentials(user=user, password=server.passwords[user])


@pytest.fixture
async def admin(secured):
    nc = await connect(secured.url, name="test-admin", credentials=creds(secured, natsauth.ADMIN))
    await streams.ensure(nc.jetstream())
    try:
        yield nc
    finally:
        await nc.close()


async def _denied(server, user: str, subject: str, admin_nc) -> None:
    """``user`` publishing on ``subject``: the server refuses it and nobody receives it."""
    got: list = []

    async def spy(msg):
        got.append(msg)

    sub = await admin_nc.subscribe(subject, cb=spy)
    await admin_nc.flush()
    nc = await connect(server.url, name=f"test-{user}", credentials=creds(server, user))
    try:
        await nc.publish(subject, b'{"user":"alice"}')
        await nc.flush()
        deadline = asyncio.get_running_loop().time() + t(5)
        while "permissions violation" not in str(nc.last_error).lower():
            assert asyncio.get_running_loop().time() < deadline, f"{user} published on {subject} unrefused"
            await asyncio.sleep(0.02)
        assert subject.lower() in str(nc.last_error).lower()  # nats-py lower-cases server errors
        await admin_nc.flush()
        assert got == [], f"{user}'s message on {subject} was delivered"
    finally:
        await nc.close()
        await sub.unsubscribe()


@pytest.mark.parametrize("user", ROLES)
async def test_no_component_or_publisher_can_forge_a_revocation(secured, admin, user):
    await _denied(secured, user, REVOKE_SUBJECT, admin)


@pytest.mark.parametrize(
    "user, subject",
    [
        ("market-feed", user_subject(Kind.TRADES, "alice")),  # a feed cannot forge a fill
        ("publisher-risk", user_subject(Kind.TRADES, "alice")),  # a risk engine cannot either
        ("publisher-risk", user_subject(Kind.PORTFOLIO, "alice")),
        ("edge", tick_subject("AAPL")),  # an edge cannot forge a price
        ("notifier", user_subject(Kind.TRADES, "alice")),
        ("broker", user_subject(Kind.NOTIFICATIONS, "alice")),
        ("publisher-ops", user_subject(Kind.NOTIFICATIONS, "alice")),
        ("portfolio-valuer", "$JS.API.STREAM.DELETE.TM_USER_EVENTS"),  # nor delete what others rely on
        ("edge", "$JS.API.STREAM.UPDATE.TM_TICKS"),
    ],
)
async def test_a_component_cannot_publish_outside_its_role(secured, admin, user, subject):
    await _denied(secured, user, subject, admin)


async def test_the_admin_identity_may_revoke(secured, admin):
    got = []

    async def spy(msg):
        got.append(msg)

    await admin.subscribe(REVOKE_SUBJECT, cb=spy)
    await admin.publish(REVOKE_SUBJECT, b'{"user":"alice"}')
    await admin.flush()
    deadline = asyncio.get_running_loop().time() + t(5)
    while not got:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)


async def test_an_internal_publisher_publishes_its_kinds_and_is_told_when_it_strays(secured, admin):
    pub = await Publisher.connect(secured.url, creds(secured, "publisher-risk"), ack_timeout=t(1))
    try:
        ack = await pub.notify("alice", "Margin call", kind="risk", severity="critical", id="m-1")
        assert ack.stream == streams.USER_EVENTS
        with pytest.raises(PublishDenied, match="may not publish to tm.user.alice.trades"):
            await pub.execution("alice", **FORGED_TRADE)
        # Its ack came back on its own inbox: nothing else may read it.
        assert pub.nc._inbox_prefix.decode() == permissions.inbox_prefix("publisher-risk")
    finally:
        await pub.close()


async def test_a_component_cannot_read_another_components_replies(secured, admin):
    nc = await connect(secured.url, name="test-broker", credentials=creds(secured, "broker"))
    try:
        await nc.subscribe(f"{permissions.inbox_prefix('edge')}.>")
        await nc.flush()
        deadline = asyncio.get_running_loop().time() + t(5)
        while "permissions violation for subscription" not in str(nc.last_error).lower():
            assert asyncio.get_running_loop().time() < deadline, "broker subscribed to the edge's inbox"
            await asyncio.sleep(0.02)
    finally:
        await nc.close()


async def test_wrong_or_missing_credentials_are_refused_with_a_clear_error(secured):
    with pytest.raises(NatsAuthError, match="user 'edge'"):
        await connect(
            secured.url, name="x", credentials=Credentials(user="edge", password="wrong"), first_attempt_timeout=t(5)
        )
    with pytest.raises(NatsAuthError, match="anonymous"):
        await connect(secured.url, name="x", first_attempt_timeout=t(5))


def test_local_credentials_are_private_stable_and_never_shown(tmp_path):
    first = natsauth.local_credentials(tmp_path, ["edge"])
    again = natsauth.local_credentials(tmp_path, ["edge", "broker"])
    assert again["edge"] == first["edge"] and again["broker"] and len(set(again.values())) == 3
    path = tmp_path / "nats" / natsauth.CREDENTIALS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    conf = natsauth.write_server_config(tmp_path, again)
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == again
    assert again["edge"] not in repr(Credentials(user="edge", password=again["edge"]))


def test_every_service_and_the_edge_have_a_role():
    from tickmesh.cli import services

    for name in [*services(), "edge"]:
        assert name in permissions.roles(), f"no NATS role for {name} in contracts/permissions.toml"


async def test_a_component_without_the_right_to_manage_streams_needs_the_admin_to_make_them(secured):
    from tickmesh import config

    nc = await connect(secured.url, name="test-feed", credentials=creds(secured, "market-feed"))
    try:
        js = nc.jetstream()
        waiting = config.load(streams.Retention, {"TICKMESH_STREAMS_MANAGE": "off", "TICKMESH_STREAMS_WAIT_S": "0.5"})
        with pytest.raises(streams.StreamSetupError, match="admin identity creates streams"):
            await streams.ensure(js, waiting)  # nothing there yet, and it may not create them
        with pytest.raises(streams.StreamSetupError, match="may not create or update streams"):
            await streams.ensure(js, config.load(streams.Retention, {}))  # trying anyway is refused, clearly
        admin = await connect(secured.url, name="test-admin", credentials=creds(secured, natsauth.ADMIN))
        try:
            await streams.ensure(admin.jetstream())
        finally:
            await admin.close()
        await streams.ensure(js, waiting)  # now they exist: it goes on
    finally:
        await nc.close()


async def test_the_streams_command_manages_streams_as_admin_only(secured):
    import subprocess
    import sys

    from tests.support.procs import base_env

    def run(user: str) -> subprocess.CompletedProcess:
        env = base_env(NATS_URL=secured.url, NATS_USER=user, NATS_PASSWORD=secured.passwords[user])
        return subprocess.run(
            [sys.executable, "-m", "tickmesh", "streams", "--timeout", str(t(10))],
            env=env,
            capture_output=True,
            text=True,
            timeout=t(60),
        )

    refused = await asyncio.to_thread(run, "edge")
    assert refused.returncode == 1 and "may not create or update streams" in refused.stderr, refused.stderr
    done = await asyncio.to_thread(run, natsauth.ADMIN)
    assert done.returncode == 0, done.stderr
    nc = await connect(secured.url, name="check", credentials=creds(secured, "edge"))
    try:
        assert (await nc.jetstream().stream_info(streams.TICKS)).config.name == streams.TICKS
    finally:
        await nc.close()
