"""Publishes notifications straight to NATS JetStream, as the notifier would, for browser tests.

Usage: publish.py NATS_URL USER PREFIX COUNT. Connects first, prints "ready", then waits for a
line on stdin before publishing (so a test can publish at an exact moment, e.g. while the edge
is down), prints each id, and exits.
"""

import asyncio
import sys
import time

import nats

from tickmesh.contracts import messages
from tickmesh.contracts.channels import Kind, user_subject


async def main(url: str, user: str, prefix: str, count: int) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for i in range(count):
        nid = f"{prefix}-{i}"
        body = {"id": nid, "user": user, "kind": "system", "severity": "info",
                "title": f"Test notification {nid}", "ts": int(time.time() * 1_000_000)}
        await js.publish(user_subject(Kind.NOTIFICATIONS, user), messages.encode("notification", body),
                         headers={"Nats-Msg-Id": nid})
        print(nid, flush=True)
    await nc.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
