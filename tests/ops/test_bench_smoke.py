"""Smoke test of ``tickmesh bench``: its tiniest run against real edges and a real nats-server,
plus the reconnect storm's per-client bookkeeping (stream positions, gaps, duplicates, ``since``)
checked without sockets.

It checks the shape of the JSON record, that messages were delivered and that the storm's
clients resumed on the second edge without a gap or duplicate; never how fast (performance is
measured by the bench itself, side by side with peers, not asserted in tests).
"""

from __future__ import annotations

import json
import subprocess
import sys

import orjson

from tests.support.timing import t
from tickmesh.ops.bench.positions import Position, msg_seqs
from tickmesh.ops.bench.protocols import ResumingCodec


def test_bench_smallest_run_fan_out_and_storm(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tickmesh",
            "bench",
            "--quick",
            "--scenario",
            "fan-out",
            "--scenario",
            "storm",
            "--target",
            "tickmesh",
            "--clients",
            "4",
            "--rates",
            "20",
            "--seconds",
            "2",
            "--drain",
            "2",
            "--workers",
            "1",
            "--workdir",
            str(tmp_path / "work"),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=t(120),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads(out.read_text())
    assert set(record) == {"meta", "rows", "ratios"}
    assert record["meta"]["machine"]["nproc"] >= 1
    row, storm = record["rows"]
    assert row["scenario"] == "fan-out" and row["target"] == "tickmesh", row
    assert row["clients"] == 4 and row["ready"] == 4, row
    assert row["delivered"] > 0, row
    assert row["expected"] > 0 and 0 < row["fraction"] <= 1.0, row
    for key in ("p50_ms", "p99_ms", "max_ms", "delivered_per_s", "busy", "loadgen_cpu"):
        assert row[key] is not None, key
    assert {"edge", "nats-server"} <= set(row["servers"]), row["servers"]
    assert "deliv/s" in proc.stdout  # the table was printed

    # the storm: edge A killed, every client resumed on edge B with since, nothing lost or doubled
    assert storm["scenario"] == "storm" and storm["ready"] == 4, storm
    extra = storm["extra"]
    assert extra["resubscribed"] == 4 and extra["caught_up"] == 4, extra
    assert extra["resumes"] >= 4 and extra["upto"] > 0, extra  # every client resubscribed with since
    assert extra["gaps"] == 0 and extra["duplicates"] == 0 and extra["early"] == 0, extra
    assert extra["not_recovered"] == {}, extra
    assert extra["resubscribe_s"] is not None and extra["recover_s"] is not None, extra
    assert "edge-b" in storm["servers"] and "edge" not in storm["servers"], storm["servers"]  # A is dead
    assert storm["delivered"] == storm["expected"] > 0, storm


# -- the storm's bookkeeping, sans I/O ----------------------------------------------------------


def _msg(seq: int, ch: str = "news") -> dict:
    return {"op": "msg", "ch": ch, "seq": seq, "data": {"id": f"n{seq}", "headline": "h", "bt": 1}}


def _wire(*frames: dict) -> bytes:
    """One WebSocket message as the edge writes it: a frame, or a batch as a JSON array."""
    return orjson.dumps(frames[0] if len(frames) == 1 else list(frames))


FIND = msg_seqs("news")


def _feed(pos: Position, *frames: dict, now: float = 1.0) -> None:
    pos.on_msgs(FIND(_wire(*frames)), now)


def test_msg_seqs_finds_positions_of_its_channel_only_in_frames_and_batches():
    batch = _wire(_msg(7), {"op": "ok", "id": 1, "epoch": "5", "seq": 9}, _msg(8, "trades"), _msg(9))
    assert FIND(batch) == [b"7", b"9"]
    assert FIND(_wire(_msg(12))) == [b"12"]
    assert msg_seqs("prices:BRK.B")(_wire(_msg(3, "prices:BRK.B"), _msg(4, "prices:BRKxB"))) == [b"3"]


def test_position_counts_nothing_when_every_position_arrives_once_in_order():
    pos = Position()
    assert pos.since() is None  # the first sub is live only
    assert pos.on_ok({"op": "ok", "id": 1, "epoch": "e1", "seq": 10, "recovered": True, "replayed": 0}, 1.0)
    _feed(pos, _msg(11), _msg(12))
    _feed(pos, _msg(13))
    assert (pos.gaps(13), pos.dups, pos.early) == (0, 0, 0)
    assert pos.since() == {"epoch": "e1", "seq": 13}
    assert pos.caught_up(13) and not pos.caught_up(14)


def test_position_counts_duplicates_missing_positions_and_positions_never_delivered():
    pos = Position()
    pos.on_ok({"op": "ok", "id": 1, "epoch": "e1", "seq": 10}, 1.0)
    _feed(pos, _msg(11), _msg(13), _msg(13))  # 12 missing, 13 twice
    _feed(pos, _msg(10))  # at the start position: the client never asked for it
    assert pos.dups == 2
    assert pos.gaps() == 1 and pos.first_gap() == (12, 12)
    assert pos.gaps(16) == 4  # 14, 15 and 16 were stored but never came
    _feed(pos, _msg(12))  # late, out of order: no longer a gap, and not a duplicate
    assert (pos.gaps(13), pos.dups) == (0, 2)


def test_position_resumes_from_the_last_received_and_recovers_when_the_replay_has_arrived():
    pos = Position()
    pos.on_ok({"op": "ok", "id": 1, "epoch": "e1", "seq": 10}, 1.0)
    _feed(pos, _msg(11), _msg(12))
    assert pos.since() == {"epoch": "e1", "seq": 12}  # what the resubscription asks for
    # resubscribed: 13..15 are replayed after the ok, then live ones
    assert pos.on_ok({"op": "ok", "id": 1, "epoch": "e1", "seq": 15, "recovered": True, "replayed": 3}, 5.0)
    assert pos.recovered_at == 0.0  # the replay has not arrived yet
    _feed(pos, _msg(13), _msg(14), now=5.1)
    assert pos.recovered_at == 0.0
    _feed(pos, _msg(15), _msg(16), now=5.2)
    assert pos.recovered_at == 5.2 and pos.last_ok == (12, 15, 3, True)
    assert (pos.gaps(16), pos.dups) == (0, 0)
    # nothing missed: recovered at the ok itself
    pos.since()
    pos.on_ok({"op": "ok", "id": 1, "epoch": "e1", "seq": 16, "recovered": True, "replayed": 0}, 7.0)
    assert pos.recovered_at == 7.0


def test_position_reports_an_ok_that_says_recovered_false_and_a_msg_before_the_first_ok():
    pos = Position()
    _feed(pos, _msg(3))
    assert pos.early == 1
    pos.on_ok({"op": "ok", "id": 1, "epoch": "e1", "seq": 10}, 1.0)
    assert not pos.on_ok(
        {"op": "ok", "id": 1, "epoch": "e2", "seq": 88, "recovered": False, "reason": "epoch_changed", "replayed": 0},
        2.0,
    )
    assert pos.not_recovered == 1 and pos.since() == {"epoch": "e2", "seq": 88}
    assert pos.gaps(88) == 78  # what the client lost is still counted


def test_resuming_codec_sends_since_keeps_ok_and_err_and_retries():
    pos = Position()
    codec = ResumingCodec(["news"], lambda: "token", "news", pos.since)
    assert orjson.loads(codec.hello()[0])["op"] == "auth"
    (sub,) = codec.feed(b'{"op":"welcome"}')
    assert orjson.loads(sub) == {"op": "sub", "id": 1, "ch": "news"}  # no position yet
    codec.feed(_wire({"op": "ok", "id": 1, "epoch": "e1", "seq": 4, "recovered": True, "replayed": 0}, _msg(5)))
    assert codec.ready and codec.oks[0]["seq"] == 4
    pos.on_ok(codec.oks.pop(), 1.0)
    pos.on_msgs(FIND(_wire(_msg(5))), 1.0)

    again = ResumingCodec(["news"], lambda: "token", "news", pos.since)  # the next connection's
    again.hello()
    (sub,) = again.feed(b'{"op":"welcome"}')
    assert orjson.loads(sub)["since"] == {"epoch": "e1", "seq": 5}
    again.feed(b'{"op":"err","id":1,"code":501,"reason":"history unavailable; retry"}')
    assert again.ready and again.failed == 1 and again.errs[0]["code"] == 501
    assert orjson.loads(again.retry())["since"] == {"epoch": "e1", "seq": 5}
    assert not again.ready  # waiting for the retried sub's answer


def test_presence_bench_core_runs_and_reports_bounded_deltas():
    from tickmesh.ops.bench.presence import core

    out = core(600)
    assert out["members"] == 600 and out["snapshot_bytes"] > 0
    # Under churn a delta carries counts plus the listed members that changed, never the topic.
    assert out["delta_bytes_max"] < out["snapshot_bytes"]


def test_audit_bench_times_what_it_says_each_set_up_delivers_and_only_audit_records():
    from tickmesh.ops.bench.audit import SETUPS, build, main, one_round

    for setup in SETUPS:
        hub, conns, audit, payloads = build(setup, users=20, conns=2)
        assert hub.publish(payloads[0][0], 1, payloads[0][1]) == 2  # both of the user's connections
        one_round(hub, conns, payloads, 1)
        assert len(audit._buf) == (2 + 40 if setup == "audit" else 0)
    main(["--users", "20", "--rounds", "2"])
