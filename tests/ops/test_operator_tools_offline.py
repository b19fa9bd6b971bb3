"""The one-shot operator tools with no NATS server to reach: each fails at once with exit code 2
and one line on stderr that names the problem, never a hang or a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.procs import free_port

TOOLS = {
    "announce": ["announce", "--severity", "info", "--text", "hello"],
    "audit": ["audit", "trades", "--user", "alice", "--order", "o-1"],
    "flags": ["flags", "list"],
}


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_an_unreachable_nats_is_one_clear_line_and_exit_2(tool, tmp_path):
    env = {**os.environ, "NATS_URL": f"nats://127.0.0.1:{free_port()}", "TICKMESH_HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "tickmesh", *TOOLS[tool]], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"tickmesh {tool}: could not"), proc.stderr
    assert "Traceback" not in proc.stderr
