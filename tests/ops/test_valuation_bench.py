"""The sharded valuation bench runs end to end (tiny sizes): real valuers over a real NATS."""

import subprocess
import sys

from tests.support.timing import t


def test_sharded_valuation_bench_reports_every_shard():
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tickmesh.ops.bench.valuation",
            "--users",
            "300",
            "--shards",
            "2",
            "--seconds",
            "2",
            "--rate",
            "100",
        ],
        capture_output=True,
        text=True,
        timeout=t(120),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "shard 0: " in out.stdout and "shard 1: " in out.stdout, out.stdout
    assert "portfolios/s out" in out.stdout and "total: " in out.stdout
