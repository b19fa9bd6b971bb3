"""The margin-alert example (ops/examples/margin_alert.py), run as a user would run it."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest

from tests.support.timing import t
from tickmesh import streams
from tickmesh.contracts.channels import Kind, user_subject
from tickmesh.ops.examples.margin_alert import BadSnapshot, check

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def test_below_the_requirement_is_a_margin_call_close_to_it_a_warning_above_it_nothing():
    call = check({"user": "alice", "equity": "8200", "requirement": "10000.00"}, warn_pct=Decimal(10), now=NOW)
    assert call is not None and call.level == "critical" and "1,800.00" in call.title
    warn = check({"user": "alice", "equity": "10500", "requirement": "10000"}, warn_pct=Decimal(10), now=NOW)
    assert warn is not None and warn.level == "warning" and warn.id != call.id
    assert check({"user": "alice", "equity": "12000", "requirement": "10000"}, warn_pct=Decimal(10), now=NOW) is None
    again = check({"user": "alice", "equity": "8100", "requirement": "10000"}, warn_pct=Decimal(10), now=NOW)
    assert again.id == call.id, "one margin call per user per day"


@pytest.mark.parametrize(
    "snapshot, field",
    [
        ({"equity": "1", "requirement": "2"}, "user"),
        ({"user": "a", "equity": 8200.5, "requirement": "2"}, "equity"),
        ({"user": "a", "equity": "lots", "requirement": "2"}, "equity"),
        ({"user": "a", "equity": "1", "requirement": "0"}, "requirement"),
    ],
)
def test_a_bad_snapshot_names_its_field(snapshot, field):
    with pytest.raises(BadSnapshot, match=f"^{field}:"):
        check(snapshot, warn_pct=Decimal(10), now=NOW)


def _run(url: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tickmesh.ops.examples.margin_alert", "--nats", url, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=t(60),
    )


async def test_the_example_notifies_the_user_once_per_day_and_refuses_bad_input(nc, nats_server):
    first = _run(nats_server.url, "--user", "alice", "--equity", "8200.00", "--requirement", "10000.00")
    assert first.returncode == 0, first.stderr
    assert "critical margin alert stored" in first.stdout
    again = _run(
        nats_server.url,
        "--stdin",
        stdin='{"user": "alice", "equity": "8000", "requirement": "10000"}\n'
        '{"user": "bob", "equity": "99999", "requirement": "10000"}\n',
    )
    assert again.returncode == 0, again.stderr
    assert "already sent today" in again.stdout and "bob: margin fine, nothing sent" in again.stdout

    msg = await nc.jetstream().get_last_msg(streams.USER_EVENTS, user_subject(Kind.NOTIFICATIONS, "alice"))
    note = orjson.loads(msg.data)
    assert note["kind"] == "risk" and note["severity"] == "critical" and note["user"] == "alice"
    assert (await nc.jetstream().stream_info(streams.USER_EVENTS)).state.messages == 1

    bad = _run(nats_server.url, "--user", "al ice", "--equity", "1", "--requirement", "2")
    assert bad.returncode == 2 and "user id" in bad.stderr, bad.stderr
