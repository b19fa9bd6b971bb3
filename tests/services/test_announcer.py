import asyncio
import sys

import orjson
import pytest

from tests.services.conftest import Inbox, command, service
from tests.support.procs import Proc, base_env
from tickmesh import streams
from tickmesh.contracts import messages
from tickmesh.contracts.channels import Kind, public_subject
from tickmesh.publish import now_us
from tickmesh.services.announcer import service as announcer_service
from tickmesh.services.announcer.cli import parse_time
from tickmesh.services.announcer.schedule import AnnouncementError, Schedule, prepare

NOW = 1_795_000_000_000_000
S = 1_000_000
TTL = 3600 * S


def data(**kw):
    return messages.schema("announcement").validate({"severity": "warning", "text": "Maintenance tonight", **kw})


# --- the sans-I/O core ----------------------------------------------------------------------


def test_every_announcement_carries_an_end():
    ann = prepare(data(), ann_id="a", now=NOW, default_ttl_us=TTL)
    assert ann == {
        "id": "a",
        "severity": "warning",
        "text": "Maintenance tonight",
        "starts_at": NOW,
        "ends_at": NOW + TTL,
    }
    later = prepare(data(starts_at=NOW + 10 * S), ann_id="b", now=NOW, default_ttl_us=TTL)
    assert later["ends_at"] == NOW + 10 * S + TTL
    messages.schema("announcement").validate(later)


@pytest.mark.parametrize("kw", [{"ends_at": NOW - 1}, {"starts_at": NOW + 10 * S, "ends_at": NOW + 5 * S}])
def test_expired_or_inverted_announcements_are_refused(kw):
    with pytest.raises(AnnouncementError) as exc:
        prepare(data(**kw), ann_id="a", now=NOW, default_ttl_us=TTL)
    assert exc.value.code == 102


def test_schedule_releases_at_start_and_drops_what_expired_while_waiting():
    sched = Schedule()
    soon = prepare(data(starts_at=NOW + 10 * S), ann_id="soon", now=NOW, default_ttl_us=TTL)
    brief = prepare(data(starts_at=NOW + 5 * S, ends_at=NOW + 6 * S), ann_id="brief", now=NOW, default_ttl_us=TTL)
    assert sched.add(soon) and sched.add(brief) and not sched.add(soon)
    assert sched.next_start() == NOW + 5 * S
    assert sched.pop_due(NOW + 4 * S) == ([], [])
    assert sched.pop_due(NOW + 20 * S) == ([soon], [brief])
    assert sched.next_start() is None


def test_cli_times_are_iso_8601_and_naive_means_utc():
    assert (
        parse_time("2026-11-25T18:00:00Z") == parse_time("2026-11-25T19:00:00+01:00") == parse_time("2026-11-25T18:00")
    )


# --- against a real NATS --------------------------------------------------------------------


async def test_admins_publish_now_or_later_and_others_are_refused(nc, nats_server):
    inbox = await Inbox.on(nc, public_subject(Kind.ANNOUNCEMENTS))
    async with service(announcer_service, nats_server.url):
        denied = await command(nc, "announcement.publish", "zed", {"severity": "info", "text": "hi"}, roles=("user",))
        assert denied.code == 301
        now = await command(
            nc, "announcement.publish", "root", {"severity": "critical", "text": "Now"}, roles=("admin",), cmd_id="n1"
        )
        assert now.ok and now.data["ends_at"] > now.data["ts"]
        again = await command(
            nc, "announcement.publish", "root", {"severity": "critical", "text": "Now"}, roles=("admin",), cmd_id="n1"
        )
        assert again.data["id"] == now.data["id"]
        start = now_us() + 300_000
        later = await command(
            nc,
            "announcement.publish",
            "root",
            {"severity": "info", "text": "Later", "starts_at": start},
            roles=("admin",),
        )
        assert later.ok and "ts" not in later.data
        gone = await command(
            nc,
            "announcement.publish",
            "root",
            {"severity": "info", "text": "Old", "ends_at": now_us() - 1},
            roles=("admin",),
        )
        assert gone.code == 102
        msg = await inbox.wait_for(lambda m: orjson.loads(m.data)["text"] == "Later")
        assert messages.decode("announcement", msg.data)["ts"] >= start
    texts = [orjson.loads(m.data)["text"] for m in inbox.msgs]
    assert texts == ["Now", "Later"]
    info = await nc.jetstream().stream_info(streams.ANNOUNCEMENTS)
    assert info.state.messages == 2  # the retried command was stored once


async def test_the_cli_publishes_through_the_announcer(nc, nats_server, tmp_path):
    inbox = await Inbox.on(nc, public_subject(Kind.ANNOUNCEMENTS))
    async with service(announcer_service, nats_server.url):
        await command(nc, "announcement.publish", "root", {"severity": "info", "text": "warm-up"}, roles=("admin",))
        proc = Proc(
            [
                sys.executable,
                "-m",
                "tickmesh",
                "announce",
                "--severity",
                "warning",
                "--text",
                "From the CLI",
                "--ends-at",
                "2199-01-01T00:00Z",
            ],
            base_env(NATS_URL=nats_server.url),
            tmp_path / "cli.log",
        )
        code = await asyncio.get_running_loop().run_in_executor(None, proc.proc.wait, 30)
        assert code == 0, proc.output()
        msg = await inbox.wait_for(lambda m: orjson.loads(m.data)["text"] == "From the CLI")
        ann = messages.decode("announcement", msg.data)
        assert ann["severity"] == "warning" and ann["ends_at"] == parse_time("2199-01-01T00:00Z")
        assert ann["id"] in proc.output()
