"""Revokes a user on every edge, as an operator would: publish.py's sibling for browser tests.

Usage: revoke.py NATS_URL USER. PROTOCOL.md, "Revocation": `{"user": "<id>"}` on `tm.ctl.revoke`.
"""

import asyncio
import sys

import nats
import orjson


async def main(url: str, user: str) -> None:
    nc = await nats.connect(url)
    await nc.publish("tm.ctl.revoke", orjson.dumps({"user": user}))
    await nc.flush()
    await nc.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
