"""Waits in tests scale with ``TICKMESH_TEST_TIMEOUT_FACTOR`` (default 1) for slow machines."""

import os

FACTOR = float(os.environ.get("TICKMESH_TEST_TIMEOUT_FACTOR", "1"))


def t(seconds: float) -> float:
    return seconds * FACTOR


async def eventually(check, timeout: float = 5, interval: float = 0.05):
    """Poll ``check()`` (a function or coroutine function) until it returns something truthy and
    return that; fail with the last value after ``timeout`` seconds (scaled). For waiting on state
    that has no frame to wait for (a log line, a metric, a server-side subscription)."""
    import asyncio
    import inspect

    loop = asyncio.get_running_loop()
    deadline = loop.time() + t(timeout)
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"still {value!r} after {timeout} s")
        await asyncio.sleep(interval)
