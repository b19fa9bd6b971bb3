"""A process that holds presence memberships like an edge does, for SIGKILL tests.

``python -m tests.presence.member_proc NATS_URL EDGE_ID HEARTBEAT TOPIC USER...``: joins TOPIC as
each USER, prints ``ready`` and runs until killed.
"""

import asyncio
import sys
import time

import nats

from tickmesh.presence.directory import Directory
from tickmesh.presence.local import LocalPresence
from tickmesh.presence.store import PresenceStore


async def main(url: str, edge: str, heartbeat: float, topic: str, users: list[str]) -> None:
    nc = await nats.connect(url)
    local = LocalPresence(edge, grace=1.0)
    store = PresenceStore(
        nc.jetstream(),
        edge=edge,
        local=local,
        directory=Directory(limit=100, flush_interval=0.1),
        heartbeat=heartbeat,
        on_delta=lambda d: None,
    )
    await store.start()
    for i, user in enumerate(users):
        local.join(f"c{i}", user, user.title(), topic, None, time.time_ns() // 1000)
    await store._write_pending()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5:]))
