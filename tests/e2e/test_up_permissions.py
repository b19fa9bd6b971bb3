"""``tickmesh up`` with NATS permissions: every component works inside its role, and only the
admin identity can revoke a user.

One stack runs a tour of what the components do on NATS (prices with history, commands of every
service, alerts firing, announcements from the operator tool, revocation) and then the
NATS server's log must hold no permission violation but the one this test provokes on purpose.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import nats
import orjson
import pytest
import websockets

from tests.e2e.test_up import dev_token, start_up
from tests.support.timing import t
from tests.support.wsclient import Client
from tickmesh.contracts.channels import REVOKE_SUBJECT


@pytest.fixture
def stack(tmp_path):
    proc, edge_port, env = start_up(tmp_path)
    proc.edge_port, proc.env, proc.home = edge_port, env, tmp_path / "home"
    try:
        yield proc
    finally:
        proc.stop()


def _passwords(stack) -> dict[str, str]:
    return json.loads((stack.home / "nats" / "credentials.json").read_text())


async def _until_frame(client: Client, pred, what: str, timeout: float = 20, seen: list | None = None) -> dict:
    """The first frame matching ``pred``: among ``seen`` (frames that arrived before a reply),
    else the next ones."""
    for frame in seen or []:
        if pred(frame):
            return frame
    deadline = time.monotonic() + t(timeout)
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {what}"
        frame = await client.recv(timeout=remaining)
        if pred(frame):
            return frame


async def test_every_component_works_within_its_role_and_only_the_admin_revokes(stack):
    url = f"ws://127.0.0.1:{stack.edge_port}/ws"
    alice = await Client.login(url, dev_token(stack.edge_port, "alice"))
    bob = await Client.login(url, dev_token(stack.edge_port, "bob"))
    admin = await Client.login(url, dev_token(stack.edge_port, "admin"))
    try:
        for ch in ("announcements", "alerts", "notifications"):
            assert (await alice.request("sub", ch=ch))[0]["op"] == "ok"
        for _ in range(80):  # the feed's first AAPL tick, then its history
            ok, _ = await alice.request("sub", ch="prices:AAPL", history=5)
            if ok["op"] == "ok" and ok.get("replayed"):
                break
            await alice.request("unsub", ch="prices:AAPL")
            await asyncio.sleep(0.25)
        assert ok["op"] == "ok" and ok["replayed"] >= 1, ok

        wl, _ = await alice.request("cmd", name="watchlist.create", data={"name": "Tech", "symbols": ["AAPL"]})
        assert wl["op"] == "ok", wl
        rule, early = await alice.request(
            "cmd", name="alert.create", data={"symbol": "AAPL", "condition": "above", "threshold": "0.01"}
        )
        assert rule["op"] == "ok", rule
        await _until_frame(alice, lambda f: f.get("op") == "msg" and f["ch"] == "alerts", "fired alert", seen=early)
        flags, _ = await admin.request("cmd", name="flag.list", data={})
        assert flags["op"] == "ok", flags

        # A fill reaches alice; her edge writes its delivery to the audit trail and answers the
        # admin's question about it, all within the edge's role.
        assert (await alice.request("sub", ch="trades"))[0]["op"] == "ok"
        order, early = await alice.request(
            "cmd",
            name="order.submit",
            data={"client_order_id": "perm-1", "symbol": "AAPL", "side": "buy", "type": "market", "quantity": "1"},
        )
        assert order["op"] == "ok", order
        await _until_frame(
            alice,
            lambda f: f.get("op") == "msg" and f["ch"] == "trades" and f["data"]["status"] == "filled",
            "fill",
            seen=early,
        )
        deadline = time.monotonic() + t(20)
        while True:
            audit, _ = await admin.request("cmd", name="audit.trades", data={"user": "alice", "order": "perm-1"})
            assert audit["op"] == "ok", audit
            if [e for e in audit["data"]["executions"] if e["status"] == "filled" and e["delivered_at"]]:
                break
            assert time.monotonic() < deadline, audit
            await asyncio.sleep(0.2)

        # The operator tool acts as the local stack's admin identity.
        nats_url = f"nats://127.0.0.1:{stack.env['TICKMESH_NATS_PORT']}"
        done = subprocess.run(
            [sys.executable, "-m", "tickmesh", "announce", "--text", "Maintenance at 22:00"],
            env={**stack.env, "NATS_URL": nats_url},
            capture_output=True,
            text=True,
            timeout=t(30),
        )
        assert done.returncode == 0, done.stderr
        await _until_frame(
            alice,
            lambda f: (
                f.get("op") == "msg" and f["ch"] == "announcements" and f["data"]["text"] == "Maintenance at 22:00"
            ),
            "announcement",
        )

        # A component's identity cannot revoke anyone; the admin's can.
        forger = await nats.connect(
            nats_url, name="forger", user="edge", password=_passwords(stack)["edge"], inbox_prefix="_INBOX_edge"
        )
        try:
            await forger.publish(REVOKE_SUBJECT, orjson.dumps({"user": "bob"}))
            await forger.flush()
        finally:
            await forger.close()
        ops = await nats.connect(nats_url, user="admin", password=_passwords(stack)["admin"])
        try:
            await ops.publish(REVOKE_SUBJECT, orjson.dumps({"user": "alice"}))
            await ops.flush()
        finally:
            await ops.close()
        with pytest.raises(websockets.ConnectionClosed):  # alice's connection is closed (4102) ...
            while True:
                await alice.recv(timeout=20)
        assert alice.ws.close_code == 4102
        pong, _ = await bob.request("ping")  # ... bob, whom only a forger tried to revoke, is not
        assert pong["op"] == "pong"
    finally:
        for c in (alice, bob, admin):
            await c.close()

    violations = [line for line in stack.output().splitlines() if " Violation - " in line]  # nats-server's log
    assert violations and all(':forger"' in v and f'Subject "{REVOKE_SUBJECT}"' in v for v in violations), "\n".join(
        violations
    )
