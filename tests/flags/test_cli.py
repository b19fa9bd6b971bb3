"""`tickmesh flags` as an operator runs it: a real process against a real nats-server."""

import os
import subprocess
import sys

import orjson
import pytest


@pytest.fixture
def flags_cli(nats_server):
    env = {**os.environ, "NATS_URL": nats_server.url, "TICKMESH_OPERATOR": "ops-oncall"}

    def run(*args, ok=0):
        proc = subprocess.run(
            [sys.executable, "-m", "tickmesh", "flags", *args], capture_output=True, text=True, env=env, timeout=60
        )
        assert proc.returncode == ok, (args, proc.stdout, proc.stderr)
        return proc.stdout + proc.stderr

    return run


def test_an_operator_creates_rolls_out_targets_and_kills_a_flag(flags_cli):
    assert "stored at revision" in flags_cli("set", "ws.msgpack", "false", "--description", "MessagePack codec")
    assert "10% -> true" in flags_cli("rollout", "ws.msgpack", "10%")
    flags_cli("rules", "ws.msgpack", "--add", "--role", "admin", "--user", "alice")
    assert "[0] users=alice roles=admin -> true" in flags_cli("rules", "ws.msgpack")
    out = flags_cli("list")
    assert "ws.msgpack" in out and "boolean" in out and "live" in out and "(1 flags" in out
    assert orjson.loads(flags_cli("eval", "ws.msgpack", "--user", "alice", "--role", "admin")) == {
        "value": True,
        "variant": "on",
        "reason": "targeting_match",
    }
    flags_cli("kill", "ws.msgpack")
    assert orjson.loads(flags_cli("eval", "ws.msgpack", "--user", "alice", "--role", "admin"))["reason"] == "disabled"
    audit = flags_cli("audit", "ws.msgpack")
    assert [line.split()[5] for line in audit.splitlines()] == ["create", "rollout", "add_rule", "kill"]
    assert all("by ops-oncall via cli" in line for line in audit.splitlines())
    assert flags_cli("--as", "alice", "delete", "ws.msgpack")
    assert "by alice via cli" in flags_cli("audit").splitlines()[-1]


def test_typed_values_and_refusals(flags_cli):
    flags_cli("set", "layout", '{"cols": 3}')
    assert orjson.loads(flags_cli("show", "layout"))["type"] == "json"
    flags_cli("set", "limit", "2.5")
    assert "not a number" in flags_cli("set", "limit", "abc", ok=2)
    assert "refused (641)" in flags_cli("rollout", "limit", "150%", ok=1)
    assert "refused (641)" in flags_cli("rollout", "limit", "5%", ok=1)  # a number flag's rollout needs --value
    flags_cli("rollout", "limit", "5%", "--value", "4")
    assert "refused (640)" in flags_cli("kill", "nope", ok=1)
    assert "refused (641)" in flags_cli("set", "Bad Name", "true", ok=1)


def test_an_unreachable_nats_is_a_clear_error():
    env = {**os.environ, "NATS_URL": "nats://127.0.0.1:9"}
    proc = subprocess.run([sys.executable, "-m", "tickmesh", "flags", "list"], capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and "could not reach NATS" in proc.stderr
