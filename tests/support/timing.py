"""Waits in tests scale with ``TICKMESH_TEST_TIMEOUT_FACTOR`` (default 1) for slow machines."""

import os

FACTOR = float(os.environ.get("TICKMESH_TEST_TIMEOUT_FACTOR", "1"))


def t(seconds: float) -> float:
    return seconds * FACTOR
