"""Commands between the bench coordinator and its load-client processes, over a pipe.

Each side sends a dict and awaits a dict; :func:`recv` waits on the pipe's file descriptor from
the event loop, so neither side blocks its loop (nor needs a thread) while the other works.
"""

from __future__ import annotations

import asyncio
import os
from multiprocessing.connection import Connection
from typing import Any


async def recv(conn: Connection) -> Any:
    """The next object from ``conn``, awaited without blocking the running loop."""
    if conn.poll():
        return conn.recv()
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    fd = conn.fileno()
    loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
    try:
        await ready
    finally:
        loop.remove_reader(fd)
        # the loop made the descriptor non-blocking; a message larger than the socket buffer
        # must be read (and later written) whole, so make it blocking again
        os.set_blocking(fd, True)
    return conn.recv()
