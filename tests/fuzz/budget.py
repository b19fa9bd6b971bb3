"""How much fuzzing a run does: ``TICKMESH_FUZZ_SCALE`` (default 1, the bounded budget of
``make test``) multiplies every fuzz test's examples and seconds. A longer run by command:
``TICKMESH_FUZZ_SCALE=40 .venv/bin/python -m pytest tests/fuzz`` (README.md here)."""

import os

SCALE = max(0.1, float(os.environ.get("TICKMESH_FUZZ_SCALE", "1")))


def examples(n: int) -> int:
    return max(1, int(n * SCALE))


def seconds(n: float) -> float:
    return n * SCALE
