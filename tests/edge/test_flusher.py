"""The flush tick's schedule, on a real event loop with stand-in connections (no sockets)."""

import asyncio

from tests.support.timing import t
from tickmesh.edge.flusher import Flusher


class Conn:
    """What the flusher touches of a connection: a writer callback."""

    def __init__(self, flusher: Flusher, log: list, requeue: int = 0) -> None:
        self.flusher, self.log, self.requeue = flusher, log, requeue
        self.ready = flusher.on_ready(self)

    def writer(self, conn) -> None:
        self.log.append(asyncio.get_running_loop().time())
        if self.requeue:  # a callback of the write queues more frames for this connection
            self.requeue -= 1
            self.ready()


async def test_the_first_frame_on_a_quiet_edge_leaves_without_waiting_for_a_tick():
    flusher = Flusher(flush_ms=60_000)  # a minute: waiting for a slot would time this test out
    flusher.start()
    log: list[float] = []
    Conn(flusher, log).ready()
    await asyncio.wait_for(_until(lambda: log), t(5))
    flusher.stop()


async def test_frames_queued_by_a_write_wait_a_whole_interval():
    flusher = Flusher(flush_ms=50)
    flusher.start()
    log: list[float] = []
    conn = Conn(flusher, log, requeue=3)
    conn.ready()
    await asyncio.wait_for(_until(lambda: len(log) >= 4), t(10))
    flusher.stop()
    gaps = [b - a for a, b in zip(log, log[1:], strict=False)]
    assert all(g >= 0.049 for g in gaps), gaps  # never sooner than the interval after a tick


async def _until(check) -> None:
    while not check():
        await asyncio.sleep(0.005)
