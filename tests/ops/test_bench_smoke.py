"""Smoke test of ``tickmesh bench``: its tiniest run against a real edge and a real nats-server.

It checks the shape of the JSON record and that messages were delivered; never how fast
(performance is measured by the bench itself, side by side with peers, not asserted in tests).
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.timing import t


def test_bench_fan_out_smallest_run(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "tickmesh", "bench", "--quick", "--scenario", "fan-out", "--target", "tickmesh",
         "--clients", "4", "--rates", "20", "--seconds", "2", "--drain", "2", "--workers", "1",
         "--workdir", str(tmp_path / "work"), "--json", str(out)],
        capture_output=True, text=True, timeout=t(90), cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads(out.read_text())
    assert set(record) == {"meta", "rows", "ratios"}
    assert record["meta"]["machine"]["nproc"] >= 1
    (row,) = record["rows"]
    assert row["scenario"] == "fan-out" and row["target"] == "tickmesh", row
    assert row["clients"] == 4 and row["ready"] == 4, row
    assert row["delivered"] > 0, row
    assert row["expected"] > 0 and 0 < row["fraction"] <= 1.0, row
    for key in ("p50_ms", "p99_ms", "max_ms", "delivered_per_s", "busy", "loadgen_cpu"):
        assert row[key] is not None, key
    assert {"edge", "nats-server"} <= set(row["servers"]), row["servers"]
    assert "deliv/s" in proc.stdout  # the table was printed
