"""The stack as a user starts it: ``tickmesh up``, then a WebSocket client."""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import jwt
import pytest

from tests.support.procs import Proc, base_env, free_port, wait_http
from tests.support.timing import t
from tests.support.wsclient import Client


def children_of(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def start_up(tmp_path, attempts: int = 3) -> tuple[Proc, int, dict]:
    """``tickmesh up`` on free ports (picked again if another process takes one meanwhile)."""
    for attempt in range(attempts):
        edge_port, nats_port = free_port(), free_port()
        env = base_env(
            TICKMESH_HOME=str(tmp_path / "home"),
            EDGE_PORT=str(edge_port),
            TICKMESH_NATS_PORT=str(nats_port),
            FEED_RATE="300",
        )
        proc = Proc([sys.executable, "-m", "tickmesh", "up"], env, tmp_path / f"up-{attempt}.log")
        try:
            wait_http(f"http://127.0.0.1:{edge_port}/readyz", 30, proc.proc)
            return proc, edge_port, env
        except RuntimeError:
            proc.stop()
            if "already in use" not in proc.output() or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


@pytest.fixture
def stack(tmp_path):
    proc, edge_port, env = start_up(tmp_path)
    try:
        proc.edge_port = edge_port
        proc.env = env
        yield proc
    finally:
        proc.stop()


def dev_token(port: int, user: str) -> str:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/dev/token",
        data=json.dumps({"user": user}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req) as resp:
        return json.load(resp)["token"]


async def test_ticks_reach_a_websocket_client_for_its_symbol_only(stack):
    c = await Client.login(f"ws://127.0.0.1:{stack.edge_port}/ws", dev_token(stack.edge_port, "alice"))
    try:
        reply, _ = await c.request("sub", ch="prices:AAPL")
        assert reply["op"] == "ok"
        msgs = await c.messages(3, timeout=15)
        assert {m["ch"] for m in msgs} == {"prices:AAPL"}
        assert all(m["data"]["symbol"] == "AAPL" and m["data"]["provider"] == "synthetic" for m in msgs)
        seqs = [m["seq"] for m in msgs]
        assert seqs == sorted(seqs) and len(set(seqs)) == 3

        reply, _ = await c.request("unsub", ch="prices:AAPL")
        assert reply["op"] == "ok"
        await asyncio.sleep(t(1.0))
        _, seen = await c.request("ping")
        assert [f for f in seen if f["op"] == "msg"] == []
    finally:
        await c.close()


def test_stopping_up_leaves_no_process_behind(stack):
    kids = children_of(stack.pid)
    assert len(kids) >= 3, stack.output()  # nats-server, the services, the edge
    grandkids = [g for k in kids for g in children_of(k)]
    started = time.monotonic()
    code = stack.stop(signal.SIGTERM, timeout=15)
    assert code == 0, stack.output()
    assert time.monotonic() - started < t(10)
    deadline = time.monotonic() + t(5)
    while time.monotonic() < deadline and any(alive(p) for p in kids + grandkids):
        time.sleep(0.05)
    assert not [p for p in kids + grandkids if alive(p)], stack.output()


def test_a_crashed_service_is_restarted(stack):
    kids = children_of(stack.pid)
    feed = next(p for p in kids if b"market-feed" in open(f"/proc/{p}/cmdline", "rb").read())
    os.kill(feed, signal.SIGKILL)
    deadline = time.monotonic() + t(15)
    while time.monotonic() < deadline:
        now = children_of(stack.pid)
        if len(now) == len(kids) and feed not in now:
            break
        time.sleep(0.1)
    else:
        pytest.fail("market-feed was not restarted:\n" + stack.output())
    assert "restarting" in stack.output()


def test_token_command_signs_with_the_local_key(stack):
    out = subprocess.run(
        [sys.executable, "-m", "tickmesh", "token", "--user", "alice", "--role", "admin"],
        env=stack.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    home = stack.env["TICKMESH_HOME"]
    secret = open(os.path.join(home, "jwt-secret")).read().strip()
    assert oct(os.stat(os.path.join(home, "jwt-secret")).st_mode & 0o777) == "0o600"
    claims = jwt.decode(out, secret, algorithms=["HS256"], audience="tickmesh")
    assert claims["sub"] == "alice" and claims["roles"] == ["admin"]


def test_a_port_in_use_is_a_clear_error(tmp_path):
    # Both ports are held by this test, so no other process can take them meanwhile.
    with socket.socket() as busy, socket.socket() as spare:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        spare.bind(("127.0.0.1", 0))
        port, nats_port = busy.getsockname()[1], spare.getsockname()[1]
        spare.close()
        env = base_env(TICKMESH_HOME=str(tmp_path / "home"), EDGE_PORT=str(nats_port), TICKMESH_NATS_PORT=str(port))
        res = subprocess.run(
            [sys.executable, "-m", "tickmesh", "up"], env=env, capture_output=True, text=True, timeout=t(30)
        )
    assert res.returncode == 2
    assert f"port {port}" in res.stderr and "TICKMESH_NATS_PORT" in res.stderr and "Traceback" not in res.stderr


async def test_an_order_over_the_edge_fills_notifies_and_revalues_for_that_user_only(stack):
    url = f"ws://127.0.0.1:{stack.edge_port}/ws"
    alice = await Client.login(url, dev_token(stack.edge_port, "alice"))
    bob = await Client.login(url, dev_token(stack.edge_port, "bob"))
    try:
        for c in (alice, bob):
            for ch in ("trades", "notifications", "portfolio"):
                assert (await c.request("sub", ch=ch))[0]["op"] == "ok"
        order = {
            "client_order_id": f"e2e-{time.time_ns()}",
            "symbol": "AAPL",
            "side": "buy",
            "type": "market",
            "quantity": "3",
        }
        reply = None
        seen: dict[str, list] = {"trades": [], "notifications": [], "portfolio": []}
        for _ in range(40):  # the broker needs a first AAPL price (error 605 until then)
            reply, early = await alice.request("cmd", name="order.submit", key=order["client_order_id"], data=order)
            for m in early:  # the execution may overtake the command's reply
                if m["op"] == "msg":
                    seen[m["ch"]].append(m)
            if reply.get("code") != 605:
                break
            await asyncio.sleep(0.25)
        assert reply["op"] == "ok" and reply["data"]["status"] == "filled", reply
        deadline = time.monotonic() + t(20)
        while time.monotonic() < deadline and not (
            seen["trades"]
            and seen["notifications"]
            and any(any(p["symbol"] == "AAPL" for p in m["data"]["positions"]) for m in seen["portfolio"])
        ):
            [m] = await alice.messages(1, timeout=20)
            seen[m["ch"]].append(m)
        executions = [m["data"] for m in seen["trades"] if m["data"]["client_order_id"] == order["client_order_id"]]
        assert len(executions) == 1, (reply, {k: [m["data"] for m in v] for k, v in seen.items()})
        [execution] = executions
        assert execution["user"] == "alice" and execution["status"] == "filled" and execution["quantity"] == "3"
        assert any("AAPL" in n["data"]["title"] for n in seen["notifications"])
        assert seen["portfolio"][-1]["data"]["user"] == "alice"
        # Bob saw his own portfolio values only: no trade, no notification, nothing of alice's.
        _, bobs = await bob.request("ping")
        for m in [f for f in bobs if f["op"] == "msg"]:
            assert m["ch"] == "portfolio" and m["data"]["user"] == "bob"
    finally:
        await alice.close()
        await bob.close()
